"""Hostile and odd image files made on the spot (never committed): at least 30 kinds."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import PHOTOS_13

PHOTO = PHOTOS_13 / "polar_bear.jpg"
EITHER = "?"  # the file may load (damaged) or fail; only a crash is wrong


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size, with no pixel data (a decompression-bomb stand-in)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b"")


def photo(size=(320, 240)) -> Image.Image:
    with Image.open(PHOTO) as image:
        return image.convert("RGB").resize(size)


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_bad_files(folder: Path, big: bool = False) -> dict[str, tuple[Path, str | None]]:
    """{kind: (path, expected reason fragment or None when the file must classify)}."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = PHOTO.read_bytes()
    png = io.BytesIO()
    photo().save(png, "PNG")
    png = png.getvalue()
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
        "grey-16": (_save(Image.fromarray((np.asarray(photo().convert("L"), np.uint16) * 257)), folder / "grey16.png"),
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
    if big:
        files["jpeg-12000x9000"] = (_save(photo((12000, 9000)), folder / "huge.jpg", quality=70), None)
    return files
