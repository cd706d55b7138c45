"""Hostile and odd image files made on the spot (never committed): at least 30 kinds."""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import PHOTOS_13

PHOTO = PHOTOS_13 / "polar_bear.jpg"
EITHER = "?"  # the file may load (damaged) or fail; only a crash is wrong


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size, with no pixel data (a decompression-bomb stand-in)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def _png(width: int, height: int, bit_depth: int, colour_type: int, row: bytes) -> bytes:
    """A PNG of ``height`` identical rows: 13000 x 13000 16-bit grey is about 350 KB on disk, made in
    milliseconds and never whole in memory here."""
    line = b"\x00" + row  # filter type 0 before each row
    rows = max(1, (1 << 20) // len(line))
    blocks, rest = divmod(height, rows)
    # A raw deflate of one block of rows, full-flushed so it refers to nothing before it: the same
    # bytes then stand for every block, and only the checksum needs the whole data.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(line * rows) + compressor.flush(zlib.Z_FULL_FLUSH)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = compressor.compress(line * rest) + compressor.flush()
    checksum, whole = 1, line * rows
    for _ in range(blocks):
        checksum = zlib.adler32(whole, checksum)
    checksum = zlib.adler32(line * rest, checksum)
    idat = b"\x78\xda" + block * blocks + tail + struct.pack(">I", checksum)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def png_16bit_grey(width: int, height: int) -> bytes:
    """A 16-bit greyscale PNG, one grey all over (Pillow reads it as I;16)."""
    return _png(width, height, 16, 0, struct.pack(">H", 40000) * width)


def png_rgba(width: int, height: int) -> bytes:
    """An 8-bit RGBA PNG, half transparent red all over."""
    return _png(width, height, 8, 6, bytes((200, 30, 30, 128)) * width)


def tiff_float(width: int, height: int) -> bytes:
    """A 32-bit float greyscale TIFF (Pillow mode F), deflate-compressed, whose strips all point at the
    same compressed bytes: 13000 x 13000 is about 100 KB on disk."""
    rows_per_strip = max(1, (1 << 20) // (4 * width))
    strip = zlib.compress(struct.pack("<f", 0.25) * width * rows_per_strip, 9)
    strips = -(-height // rows_per_strip)
    offsets_at = 8 + len(strip)
    counts_at = offsets_at + 4 * strips
    ifd_at = counts_at + 4 * strips
    tags = [  # (tag, type, count, value): type 3 SHORT, 4 LONG
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 32), (259, 3, 1, 8), (262, 3, 1, 1),
        (273, 4, strips, offsets_at), (277, 3, 1, 1), (278, 4, 1, rows_per_strip),
        (279, 4, strips, counts_at), (339, 3, 1, 3),
    ]
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 and count == 1
                                                  else struct.pack("<I", value))
        for tag, kind, count, value in tags) + struct.pack("<I", 0)
    return (b"II*\x00" + struct.pack("<I", ifd_at) + strip + struct.pack("<I", 8) * strips
            + struct.pack("<I", len(strip)) * strips + ifd)


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment of a JPEG; a scan's end includes its entropy-coded data."""
    marker = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
    segments, position = [(0xD8, 0, 2)], 2
    while position < len(data):
        code = data[position + 1]
        if code == 0xD9:
            segments.append((code, position, position + 2))
            break
        end = position + 2 + struct.unpack(">H", data[position + 2: position + 4])[0]
        if code == 0xDA:
            found = marker.search(data, end)
            end = found.start() if found else len(data)
        segments.append((code, position, end))
        position = end
    return segments


def progressive_jpeg_with_scans(scans: int, size: tuple[int, int] = (4000, 3000)) -> bytes:
    """A valid progressive JPEG whose largest small scan (an AC pass over the whole image) is repeated
    until the file has ``scans`` scans: libjpeg decodes every one, a pass over all blocks each."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 130, 140)).save(buffer, "JPEG", progressive=True, quality=80)
    data = buffer.getvalue()
    segments = _jpeg_segments(data)
    own = [s for s in segments if s[0] == 0xDA]
    repeated = max((s for s in own if s[2] - s[1] < 1000), key=lambda s: s[2] - s[1])
    end = segments[-1][1]
    return data[:end] + data[repeated[1]: repeated[2]] * (scans - len(own)) + data[end:]


def baseline_jpeg_with_scans(scans: int, one_component: bool = False, size: tuple[int, int] = (640, 480)) -> bytes:
    """A sequential (baseline) JPEG whose scan is repeated until it has ``scans``; ``one_component``
    cuts the scan header down to the first component, as a non-interleaved file has it."""
    data = _encoded(Image.new("RGB", size, (120, 130, 140)), "JPEG", quality=80)
    segments = _jpeg_segments(data)
    _, start, end = next(s for s in segments if s[0] == 0xDA)
    scan = data[start:end]
    if one_component:  # FF DA, length, Ns = 1, the first of three components' tables, Ss, Se, Ah/Al
        scan = b"\xff\xda" + struct.pack(">HB", 8, 1) + scan[5:7] + scan[11:14] + scan[14:]
    return data[:start] + scan * scans + data[segments[-1][1]:]


def photo(size=(320, 240)) -> Image.Image:
    with Image.open(PHOTO) as image:
        return image.convert("RGB").resize(size)


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def _encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _tiff_entries(data: bytes, ifd: int) -> tuple[int, list[int]]:
    """(offset of the next IFD, offsets of the 12-byte entries) of a little-endian TIFF's IFD."""
    count = struct.unpack_from("<H", data, ifd)[0]
    entries = [ifd + 2 + 12 * i for i in range(count)]
    return struct.unpack_from("<I", data, ifd + 2 + 12 * count)[0], entries


def _tiff_edit(data: bytes, page: int, tag: int, edit) -> bytes:
    """``data`` with ``edit(bytearray, entry offset)`` applied to ``tag`` of the IFD of ``page``."""
    edited = bytearray(data)
    ifd = struct.unpack_from("<I", edited, 4)[0]
    for _ in range(page):
        ifd = _tiff_entries(data, ifd)[0]
    entry = next(e for e in _tiff_entries(data, ifd)[1] if struct.unpack_from("<H", edited, e)[0] == tag)
    edit(edited, entry)
    return bytes(edited)


def pillow_exception_files(image: Image.Image) -> dict[str, tuple[str, bytes, str | None]]:
    """{kind: (suffix, bytes, expected reason fragment or None when it must load)}: files on which Pillow
    raises something other than a read error (ValueError, NotImplementedError, AttributeError, IndexError,
    TypeError, OSError EINVAL) while opening, decoding or counting frames."""
    png = _encoded(image, "PNG")
    ihdr_end = 8 + 8 + 13 + 4
    spider = bytearray(_encoded(image.convert("F"), "SPIDER"))
    struct.pack_into("<f", spider, 26 * 4, 1.0)  # "an image within a stack", with no stack offset
    dds = bytearray(_encoded(image, "DDS"))
    struct.pack_into("<I", dds, 80, 0x10000000)  # pixel format flags no one defined
    blp = bytearray(_encoded(image.convert("P"), "BLP", blp_version="BLP1"))
    struct.pack_into("<I", blp, 4, 5)  # compression 5: neither JPEG nor uncompressed
    gif = _encoded(image.convert("P"), "GIF")
    pages = _encoded(image, "TIFF", save_all=True, append_images=[image.transpose(Image.Transpose.ROTATE_180)])
    return {
        # ValueError while opening: the header chunk is shorter than its 13 bytes
        "png-truncated-ihdr": ("png", png[:8] + struct.pack(">I", 5) + b"IHDR" + png[16:21]
                               + struct.pack(">I", zlib.crc32(b"IHDR" + png[16:21])) + png[ihdr_end:], "truncated"),
        # ValueError while opening: a maximum sample value of 0
        "ppm-bad-header": ("ppm", b"P6\n320 240\n0\n" + image.tobytes(), "corrupt"),
        # ValueError while opening: ImageWidth is a floating-point number
        "tiff-invalid-dimensions": ("tif", _tiff_edit(_encoded(image, "TIFF"), 0, 256, lambda d, e: struct.pack_into(
            "<HIf", d, e + 2, 11, 1, 320.0)), "corrupt"),
        # ValueError while opening: a compressed text chunk that inflates past Pillow's 1 MB limit
        "png-text-zlib-bomb": ("png", png[:ihdr_end] + png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(
            b"\0" * (4 << 20), 9)) + png[ihdr_end:], "corrupt"),
        "dds-unknown-pixel-format": ("dds", bytes(dds), "variant of its format"),  # NotImplementedError while opening
        "spider-stack-image": ("spi", bytes(spider), "corrupt"),  # AttributeError while opening
        # BLPFormatError, a NotImplementedError, while decoding
        "blp-unknown-compression": ("blp", bytes(blp), "variant of its format"),
        # IndexError counting frames: an extension introducer, then the end of the file
        "gif-cut-after-extension": ("gif", gif[:-1] + b"!", None),
        # OSError EINVAL while opening: the palette is read from 769 bytes before the end of a shorter file
        "pcx-cut-before-its-palette": ("pcx", _encoded(image.convert("P"), "PCX")[:700], "points outside the file"),
        # TypeError counting pages: the second page has no ImageWidth
        "tiff-page-without-width": ("tif", _tiff_edit(pages, 1, 256,
                                                      lambda d, e: struct.pack_into("<H", d, e, 65000)), None),
    }


def make_bad_files(folder: Path, big: bool = False) -> dict[str, tuple[Path, str | None]]:
    """{kind: (path, expected reason fragment or None when the file must classify)}."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = PHOTO.read_bytes()
    png = _encoded(photo(), "PNG")
    files: dict[str, tuple[Path, str | None]] = {
        "empty": (_bytes(folder / "empty.jpg", b""), "empty"),
        "text-as-jpg": (_bytes(folder / "notes.jpg", b"Dear diary, this is not a photo.\n" * 20), "not an image"),
        "jpeg-cut-in-half": (_bytes(folder / "half.jpg", jpeg[: len(jpeg) // 2]), "truncated"),
        "png-cut-in-half": (_bytes(folder / "half.png", png[: len(png) // 2]), "truncated"),
        "corrupt-jpeg-header": (_bytes(folder / "header.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 40 + jpeg[200:]),
                                "not an image"),
        "png-bomb-50000": (_bytes(folder / "bomb.png", png_header_only(50000, 50000)), "decompression bomb"),
        "one-pixel": (_save(Image.new("RGB", (1, 1), (200, 10, 10)), folder / "dot.png"), None),
        "cmyk-jpeg": (_save(photo().convert("CMYK"), folder / "cmyk.jpg", quality=90), None),
        "grey-8": (_save(photo().convert("L"), folder / "grey.png"), None),
        "grey-16": (_save(Image.fromarray(np.asarray(photo().convert("L"), np.uint16) * 257), folder / "grey16.png"),
                    None),
        "palette-transparent": (_save(photo().convert("P"), folder / "palette.png", transparency=0), None),
        "la": (_save(photo().convert("LA"), folder / "la.png"), None),
        "rgba": (_save(photo().convert("RGBA"), folder / "rgba.png"), None),
        "bmp": (_save(photo(), folder / "photo.bmp"), None),
        "gif-animated": (_save(photo().convert("P"), folder / "anim.gif", save_all=True,
                               append_images=[Image.new("P", (320, 240))], duration=50), None),
        "webp-animated": (_save(photo(), folder / "anim.webp", save_all=True,
                                append_images=[Image.new("RGB", (320, 240))], duration=50), None),
        "tiff-multipage": (_save(photo(), folder / "pages.tif", save_all=True,
                                 append_images=[Image.new("RGB", (320, 240))]), None),
        "heic": (_bytes(folder / "phone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64),
                 "unsupported format"),
        "svg": (_bytes(folder / "drawing.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><rect/></svg>"),
                "unsupported format"),
        "random-bytes": (_bytes(folder / "noise.png", os.urandom(4096)), "not an image"),
        # Garbage after a good start: either a damaged picture or a clear error, never a crash.
        "jpeg-garbage-middle": (_bytes(folder / "garbage.jpg", jpeg[:2000] + os.urandom(3000)), EITHER),
        "long-name": (_save(photo(), folder / (("x" * 246) + ".jpg")), None),
        "non-utf8-name": (_save(photo(), Path(os.fsdecode(bytes(folder) + b"/caf\xe9-\xff.jpg"))), None),
        "ppm": (_save(photo(), folder / "photo.ppm"), None),
        "tga": (_save(photo(), folder / "photo.tga"), None),
    }
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        files[f"exif-{orientation}"] = (_save(photo(), folder / f"exif{orientation}.jpg", exif=exif), None)
    folder_like = folder / "looks-like.jpg"
    folder_like.mkdir()
    files["folder-named-jpg"] = (folder_like, "folder")
    loop = folder / "loop.jpg"
    os.symlink(loop, loop)
    files["symlink-loop"] = (loop, "symbolic link loop")
    files["missing"] = (folder / "deleted-after-listing.jpg", "does not exist")
    for kind, (suffix, data, reason) in pillow_exception_files(photo()).items():
        files[kind] = (_bytes(folder / f"{kind}.{suffix}", data), reason)
    # The hostile files reported against the loader, at their size: each is refused at once by a limit.
    files["png-16bit-13000x13000"] = (_bytes(folder / "huge16.png", png_16bit_grey(13000, 13000)),
                                      "150-megapixel limit")
    files["jpeg-20000-scans"] = (_bytes(folder / "scans.jpg", progressive_jpeg_with_scans(20000)), "scans")
    if big:
        files["jpeg-12000x9000"] = (_save(photo((12000, 9000)), folder / "huge.jpg", quality=70), None)
    return files


# A fresh process loads one file (argv[1]; none: imports only) and prints its peak memory and times.
MEASURE = """
import json, sys, time
from cnnviewer.core.errors import ImageLoadError
from cnnviewer.core.images import load_image
outcome, wall, cpu = "imports only", time.perf_counter(), time.process_time()
if sys.argv[1:]:
    try:
        outcome = "loaded %d x %d" % load_image(sys.argv[1]).size
    except ImageLoadError as exc:
        outcome = exc.reason
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec.
with open("/proc/self/status") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"peak_mb": peak_kb / 1024, "outcome": outcome,
                  "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}))
"""


def measure_load(path: Path | None, timeout: float = 120) -> dict:
    """load_image(path) in a fresh interpreter: its peak resident MB, wall and processor seconds and the
    outcome; without a path, the same interpreter that only imports (the baseline)."""
    import json
    import subprocess
    import sys

    from tests.helpers import ROOT

    command = [sys.executable, "-c", MEASURE] + ([os.fspath(path)] if path is not None else [])
    proc = subprocess.run(command, capture_output=True, text=True, cwd=str(ROOT), timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def format_samples() -> dict[str, tuple[str, bytes]]:
    """{name: (suffix, bytes)}: a small valid file of every format (and main variant) Pillow opens here,
    the seeds of the fuzz test. Most are saved by Pillow; those it only reads are written by hand."""
    from PIL import features

    rgb = photo((32, 24))
    grey = rgb.convert("L")
    palette = rgb.convert("P")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    grey16 = Image.fromarray(np.asarray(grey, np.uint16) * 257)
    floats = Image.fromarray(np.asarray(grey, np.float32) / 255)
    exif = Image.Exif()
    exif[0x0112] = 6

    def frames(**more) -> dict:
        # A new second frame each time: saving leaves options on the appended image that another format's
        # encoder would then receive.
        return dict(save_all=True, append_images=[rgb.transpose(Image.Transpose.ROTATE_180)], **more)

    samples = {
        "jpeg": ("jpg", _encoded(rgb, "JPEG", quality=80, exif=exif)),
        "jpeg-progressive": ("jpg", _encoded(rgb, "JPEG", progressive=True)),
        "jpeg-grey": ("jpg", _encoded(grey, "JPEG")),
        "jpeg-cmyk": ("jpg", _encoded(rgb.convert("CMYK"), "JPEG")),
        "mpo": ("mpo", _encoded(rgb, "MPO", **frames(duration=40))),
        "png": ("png", _encoded(rgb, "PNG", exif=exif)),
        "png-palette-transparent": ("png", _encoded(palette, "PNG", transparency=0)),
        "png-16bit": ("png", _encoded(grey16, "PNG")),
        "png-rgba": ("png", _encoded(rgba, "PNG")),
        "png-la": ("png", _encoded(rgba.convert("LA"), "PNG")),
        "png-1bit": ("png", _encoded(grey.convert("1"), "PNG")),
        "apng": ("png", _encoded(rgb, "PNG", **frames(duration=40))),
        "gif": ("gif", _encoded(palette, "GIF", **frames(duration=40))),
        "bmp": ("bmp", _encoded(rgb, "BMP")),
        "bmp-rgba": ("bmp", _encoded(rgba, "BMP")),
        "bmp-palette": ("bmp", _encoded(palette, "BMP")),
        "bmp-1bit": ("bmp", _encoded(grey.convert("1"), "BMP")),
        "dib": ("dib", _encoded(rgb, "DIB")),
        "tiff": ("tif", _encoded(rgb, "TIFF")),
        "tiff-lzw": ("tif", _encoded(rgb, "TIFF", compression="tiff_lzw")),
        "tiff-deflate": ("tif", _encoded(rgba, "TIFF", compression="tiff_adobe_deflate")),
        "tiff-packbits": ("tif", _encoded(palette, "TIFF", compression="packbits")),
        "tiff-jpeg": ("tif", _encoded(rgb, "TIFF", compression="jpeg")),
        "tiff-float": ("tif", _encoded(floats, "TIFF")),
        "tiff-16bit": ("tif", _encoded(grey16, "TIFF", compression="tiff_deflate")),
        "tiff-cmyk": ("tif", _encoded(rgb.convert("CMYK"), "TIFF")),
        "tiff-pages": ("tif", _encoded(rgb, "TIFF", **frames())),
        "webp": ("webp", _encoded(rgb, "WEBP", quality=60)),
        "webp-lossless": ("webp", _encoded(rgba, "WEBP", lossless=True)),
        "webp-animated": ("webp", _encoded(rgb, "WEBP", **frames(duration=40))),
        "ico": ("ico", _encoded(rgba, "ICO", sizes=[(32, 24)])),
        "ico-bmp": ("ico", _encoded(rgb, "ICO", sizes=[(32, 24)], bitmap_format="bmp")),
        "ppm": ("ppm", _encoded(rgb, "PPM")),
        "pgm": ("pgm", _encoded(grey, "PPM")),
        "pbm": ("pbm", _encoded(grey.convert("1"), "PPM")),
        "pfm": ("pfm", _encoded(floats, "PPM")),
        "ppm-plain": ("ppm", b"P3\n# plain\n4 2\n255\n"
                      + b" ".join(b"%d" % v for v in rgb.crop((0, 0, 4, 2)).tobytes())),
        "tga": ("tga", _encoded(rgb, "TGA")),
        "tga-rle": ("tga", _encoded(rgba, "TGA", compression="tga_rle")),
        "sgi": ("sgi", _encoded(rgb, "SGI")),
        "sgi-rgba": ("sgi", _encoded(rgba, "SGI")),
        "im": ("im", _encoded(rgb, "IM")),
        "xbm": ("xbm", _encoded(grey.convert("1"), "XBM")),
        "pcx": ("pcx", _encoded(rgb, "PCX")),
        "pcx-palette": ("pcx", _encoded(palette, "PCX")),
        "spider": ("spi", _encoded(floats, "SPIDER")),
        "dds": ("dds", _encoded(rgb, "DDS")),
        "dds-rgba": ("dds", _encoded(rgba, "DDS")),
        "dds-dxt1": ("dds", _encoded(rgba, "DDS", pixel_format="DXT1")),
        "dds-dxt5": ("dds", _encoded(rgba, "DDS", pixel_format="DXT5")),
        "blp": ("blp", _encoded(palette, "BLP")),
        "blp1": ("blp", _encoded(palette, "BLP", blp_version="BLP1")),
        "msp": ("msp", _encoded(grey.convert("1"), "MSP")),
        "qoi": ("qoi", _encoded(rgba, "QOI")),
        "jpeg2000": ("jp2", _encoded(rgb, "JPEG2000")),
        "j2k": ("j2k", _encoded(rgb, "JPEG2000", irreversible=True)),
        # Formats Pillow reads but does not write, made by hand.
        "xpm": ("xpm", b'/* XPM */\nstatic char *x[] = {\n"4 2 2 1",\n"  c #FFFFFF",\n". c #102030",\n'
                       b'" .. ",\n".  ."\n};\n'),
        "sun": ("ras", struct.pack(">8I", 0x59A66A95, 32, 24, 24, 32 * 24 * 3, 1, 0, 0) + rgb.tobytes()),
        "gbr": ("gbr", struct.pack(">7I", 29, 2, 32, 24, 1, 0x47494D50, 10) + b"brush" + grey.tobytes()),
        "fits": ("fits", b"".join(card.ljust(80).encode() for card in (
            "SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 2", "NAXIS1  = 32", "NAXIS2  = 24", "END")).ljust(2880)
            + grey.tobytes().ljust(2880, b"\0")),
    }
    ico = samples["ico-bmp"][1]
    samples["cur"] = ("cur", ico[:2] + b"\x02\x00" + ico[4:])
    pcx = samples["pcx"][1]
    samples["dcx"] = ("dcx", struct.pack("<3I", 0x3ADE68B1, 12, 0) + pcx)  # magic, one page at 12, end
    icon = _encoded(rgb.resize((128, 128)), "PNG")  # the size the ic07 entry must have
    samples["icns"] = ("icns", b"icns" + struct.pack(">I", 16 + len(icon)) + b"ic07"
                       + struct.pack(">I", 8 + len(icon)) + icon)
    if features.check("avif"):
        samples["avif"] = ("avif", _encoded(rgb, "AVIF", quality=50))
    return samples
