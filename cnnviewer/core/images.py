"""Safe image loading: one loader for every path in the app, with one error type and a reason."""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import struct
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from cnnviewer.core.errors import ImageLoadError

log = logging.getLogger(__name__)

# A truncated file is an error, never a picture with a grey bottom half.
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: The most pixels one image may have, read from its header before anything is decoded:
#: 150 megapixels (a 15000 x 10000 photo). Decoded, that is 600 MB of RGB as Pillow holds it (4 bytes
#: a pixel); the conversions below add at most the source's own pixels (no full-size float copies),
#: and the most any file then costs is a progressive 4:4:4 JPEG's, whose coefficients libjpeg keeps
#: while decoding: 1.4 GB. Pillow's own decompression-bomb check (about 179 megapixels) still runs
#: first, in every nested open.
MAX_MEGAPIXELS = 150

#: The processor time one image may spend being opened and decoded. Checked between the blocks
#: Pillow reads from the file, so it bounds slow parsing of many small pieces (markers, chunks,
#: frames); a decoder's work on one block is bounded by the pixel and scan limits instead.
MAX_DECODE_SECONDS = 5.0

#: The most scans one JPEG may have. Real progressive JPEGs have about 10; each scan costs a pass
#: over the whole image, so a file that repeats a scan 20,000 times takes minutes to decode.
#: libjpeg-turbo offers the same guard (its scan limit) to applications that decode untrusted files.
MAX_JPEG_SCANS = 100

#: Suffixes the file browser and folder scans treat as images (lower case).
IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico",
)

_UNSUPPORTED_SUFFIXES = {".heic", ".heif", ".svg", ".avif", ".jxl", ".psd", ".raw", ".cr2", ".nef"}

# Exceptions Pillow raises for a bad file by design; anything else is worth a line in the log.
_EXPECTED = (OSError, EOFError, SyntaxError, ValueError, struct.error, MemoryError, NotImplementedError)

# What EXIF orientations 2..8 need to come out upright (as PIL.ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ImageInfo:
    """Facts about an image file as a person would want to see them."""

    path: str
    file_size: int
    width: int  # after the EXIF orientation is applied
    height: int
    mode: str  # the file's own colour mode, before conversion to RGB
    format: str
    frames: int


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True when the name looks like an image the loader reads (no file access)."""
    return os.fspath(path).lower().endswith(IMAGE_SUFFIXES)


class _Refused(Exception):
    """A limit of this module refused the file; the message is the reason a person reads."""


class _BudgetedFile:
    """The opened file as Pillow sees it: every read first checks this thread's decode budget.

    The budget is the calling thread's processor time, not wall time: on a busy machine (decoding
    threads beside inference) the time a file waits for a core is not held against it.
    """

    def __init__(self, raw: io.BufferedReader, seconds: float):
        self.raw = raw
        self._seconds = seconds
        self._deadline = time.thread_time() + seconds
        self._reads = 0

    def check(self) -> None:
        if time.thread_time() > self._deadline:
            raise _Refused(f"decoding took more than {self._seconds:g} seconds of processor time, "
                           "the limit for one image (a damaged or hostile file?)")

    def _counted(self, size: int) -> None:
        # The clock before every block a decoder gets, but only every 8th small read: a JPEG header
        # alone is some 40 reads of a few bytes.
        self._reads += 1
        if size < 0 or size >= 4096 or not self._reads % 8:
            self.check()

    def read(self, size: int = -1) -> bytes:
        self._counted(size)
        return self.raw.read(size)

    def readline(self, size: int = -1) -> bytes:
        self._counted(size)
        return self.raw.readline(size)

    def __getattr__(self, name: str) -> Any:  # seek, tell, fileno, name: the real file's
        return getattr(self.raw, name)


def _reason_for_os_error(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "the file does not exist (moved or deleted?)"
    if isinstance(exc, PermissionError):
        return "permission denied: the file cannot be read"
    if isinstance(exc, IsADirectoryError):
        return "this is a folder, not an image file"
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop: the link never reaches a file"
    if exc.errno == errno.ENAMETOOLONG:
        return "the file name is too long for this system"
    return f"the file cannot be read ({exc.strerror or exc})"


def _too_many_pixels(width: int, height: int) -> str:
    return (f"the image is {width} x {height} pixels ({width * height / 1e6:,.0f} megapixels), more than the "
            f"{MAX_MEGAPIXELS}-megapixel limit for one image; refused as a possible decompression bomb")


def _check_pixels(image: Image.Image) -> None:
    width, height = image.size
    if width * height > MAX_MEGAPIXELS * 1_000_000:
        raise _Refused(_too_many_pixels(width, height))


def _reason(path: Path, exc: Exception) -> str:
    """The sentence for any exception raised while opening or decoding one file."""
    text = " ".join(str(exc).split())[:200]  # one line, however long Pillow's message is
    if isinstance(exc, _Refused):
        return str(exc)
    if isinstance(exc, Image.DecompressionBombError):
        claimed = re.search(r"\((\d+) pixels\)", text)
        size = f" (its header claims {int(claimed.group(1)) / 1e6:,.0f} megapixels)" if claimed else ""
        return (f"the image is larger than the {MAX_MEGAPIXELS}-megapixel limit for one image{size}; "
                "refused as a possible decompression bomb")
    if isinstance(exc, UnidentifiedImageError):
        suffix = path.suffix.lower()
        if suffix in _UNSUPPORTED_SUFFIXES:
            return f"unsupported format ({suffix[1:].upper()} files cannot be read)"
        return "not an image, or an unsupported format"
    if isinstance(exc, MemoryError):
        return "the image is too large to decode in the available memory"
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return "the file is truncated (cut short); part of the image is missing"
    if isinstance(exc, OSError) and exc.errno == errno.EINVAL:  # a seek outside the file
        return "the image data is corrupt (an offset in it points outside the file)"
    if isinstance(exc, OSError) and exc.errno is not None:
        return _reason_for_os_error(exc)
    if isinstance(exc, NotImplementedError):
        return f"the file uses a variant of its format that cannot be read ({text or type(exc).__name__})"
    return f"the image data is corrupt ({text or type(exc).__name__})"


def _load_error(path: Path, exc: Exception) -> ImageLoadError:
    if not isinstance(exc, (_Refused, *_EXPECTED)):
        # Pillow's plugins raise many types on damaged files (AttributeError, IndexError, TypeError,
        # ...); the user sees one sentence, the log keeps the type for whoever reads it next.
        log.info("unexpected %s while reading %s", type(exc).__name__, path, exc_info=exc)
    else:
        log.debug("cannot read %s: %s: %s", path, type(exc).__name__, exc)
    return ImageLoadError(path, _reason(path, exc))


@contextmanager
def _opened(path: Path) -> Iterator[tuple[Image.Image, _BudgetedFile]]:
    """Open (not decode) a file within the limits; what fails inside is raised as it came."""
    if path.is_dir():
        raise ImageLoadError(path, "this is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageLoadError(path, "the file is empty (0 bytes)")
    with open(path, "rb") as raw, warnings.catch_warnings():
        # Pillow warns from about 89 megapixels; MAX_MEGAPIXELS is the limit here. Only this category is
        # silenced: the filters are process-wide, and threads that race on them can at worst leave it so.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        budgeted = _BudgetedFile(raw, MAX_DECODE_SECONDS)
        image = Image.open(cast(IO[bytes], budgeted))
        try:
            _check_pixels(image)
            yield image, budgeted
        except BaseException:
            image.close()  # frees what was decoded now, not when the traceback goes
            raise


# 0xFF and a marker code: not a stuffed 0x00, a fill byte 0xFF or a restart marker (D0-D7).
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")


def _may_have_many_scans(image: Image.Image, file: _BudgetedFile) -> bool:
    """Whether libjpeg would decode scan after scan: a progressive JPEG, or a sequential one whose first
    scan lacks a component. For the rest (most photos) a second scan is an error, so none is counted."""
    components = getattr(image, "layers", None)
    if image.info.get("progressive") or image.info.get("progression") or not isinstance(components, int):
        return True
    file.seek(2)
    while True:  # the segments before the first scan, by their lengths (Pillow read them already)
        head = file.read(4)
        if len(head) < 4 or head[0] != 0xFF:
            return True  # not as expected: count
        if head[1] == 0xFF:  # a fill byte before the marker
            file.seek(-3, io.SEEK_CUR)
        elif head[1] == 0xDA:
            in_scan = file.read(1)
            return not in_scan or in_scan[0] < components
        elif (length := (head[2] << 8) | head[3]) < 2:
            return True
        else:
            file.seek(length - 2, io.SEEK_CUR)


def _jpeg_scans(file: _BudgetedFile) -> int:
    """Scans of a JPEG's first image, counted from its markers without decoding: 0 when there cannot be
    more than MAX_JPEG_SCANS, and counting stops once past it. Read in blocks, never mapped: a file
    cut short while mapped would kill the process."""
    raw = file.raw
    # Every scan starts with FF DA, so a file with few of those needs no walk (most photos: 40 us for
    # 100 KB); the walk then passes over what only looks like a scan (an EXIF thumbnail's).
    raw.seek(0)
    pairs, last = 0, b""
    while pairs <= MAX_JPEG_SCANS and (block := raw.read(1 << 20)):
        pairs += _pairs_ff_da(last + block)  # a pair split between two blocks counts in the second
        last = block[-1:]
        file.check()
    if pairs <= MAX_JPEG_SCANS:
        return 0
    scans, position = 0, 2
    while scans <= MAX_JPEG_SCANS:
        file.check()  # a file of millions of tiny segments
        code, position = _next_marker(raw, position)
        if code is None or code == 0xD9:  # the end of the first image (a multi-picture file's others follow)
            break
        if code in (0x01, 0xD8):  # markers without a segment
            continue
        raw.seek(position)
        length = raw.read(2)
        if len(length) < 2:
            break
        # The entropy-coded data after a scan header holds no markers but restarts, so the next search
        # from there finds the next segment; other segments (EXIF thumbnails) are passed over whole.
        position += (length[0] << 8) | length[1]
        scans += code == 0xDA
    return scans


def _next_marker(raw: io.BufferedReader, position: int) -> tuple[int | None, int]:
    """(marker code, position after it) of the first marker at or after ``position``; (None, ...) at the end."""
    raw.seek(position)
    tail = b""
    while block := raw.read(1 << 14):
        data = tail + block
        found = _JPEG_MARKER.search(data)
        if found is not None:
            return data[found.start() + 1], position - len(tail) + found.end()
        position += len(block)
        tail = block[-1:]  # an FF at the end of one block, its code at the start of the next
    return None, position


def _pairs_ff_da(data: bytes) -> int:
    octets = np.frombuffer(data, np.uint8)
    after_ff = np.flatnonzero(octets[:-1] == 0xFF) + 1
    return int(np.count_nonzero(octets[after_ff] == 0xDA))


def load_image(path: str | os.PathLike[str], *, min_side: int | None = None) -> Image.Image:
    """Load one image as an upright 8-bit RGB Pillow image.

    ``min_side`` lets JPEGs much larger than needed decode at a reduced scale (DCT scaling):
    the result is never smaller than ``min_side`` on its short side. Every failure raises
    :class:`ImageLoadError` naming the file and the reason; the limits are MAX_MEGAPIXELS,
    MAX_DECODE_SECONDS and MAX_JPEG_SCANS.
    """
    path = Path(os.fspath(path))
    try:
        with _opened(path) as (image, budgeted):
            if image.format in ("JPEG", "MPO") and _may_have_many_scans(image, budgeted):
                scans = _jpeg_scans(budgeted)
                if scans > MAX_JPEG_SCANS:
                    raise _Refused(f"the JPEG has more than {MAX_JPEG_SCANS} scans (real photos have about "
                                   "10); refused because decoding it could take minutes")
            if min_side and image.format == "JPEG":
                image.draft("RGB", (min_side, min_side))
            image.load()  # the first frame of animations and multi-page files
            turn = _UPRIGHT.get(_orientation(image))
            rgb = _to_rgb(image)
            # Turned after the conversion: 16-bit, float and RGBA sources would cost more to turn.
            return rgb if turn is None else rgb.transpose(turn)
    except ImageLoadError:
        raise
    except Exception as exc:  # every exception from decoding one file is that file's error
        raise _load_error(path, exc) from exc


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not stop the picture from showing
        return 1
    return value if isinstance(value, int) else 1


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB the way a person expects to see it.

    Memory stays within the source plus the RGB result (no full-size float copies): ``image`` is
    the loader's own, and is closed as soon as an intermediate makes it unneeded.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = Image.fromarray(_scale_to_uint8(image))
        image.close()
        return grey.convert("RGB")
    if mode == "P" and "transparency" in image.info or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image
        if mode != "RGBA":
            rgba = image.convert("RGBA")
            image.close()
        # Pasting through its own alpha onto white is compositing on white, without the two full-size
        # RGBA copies that Image.alpha_composite makes.
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba)
        return white
    return image.convert("RGB")


def _scale_to_uint8(image: Image.Image) -> np.ndarray:
    """High-bit-depth greyscale scaled to 0..255 rather than clipped, a band of rows at a time so
    that only the 8-bit result is full size."""
    width, height = image.size
    out = np.empty((height, width), np.uint8)
    if not width or not height:
        return out
    low, high = _extrema(image)
    if 0.0 <= low and high <= 1.0 and image.mode == "F":
        scale, offset = 255.0, 0.0
    elif 0.0 <= low and high <= 65535.0:
        scale, offset = 1 / 257.0, 0.0  # 16-bit full range maps onto 8-bit full range
    else:
        scale = 255.0 / ((high - low) or 1.0)
        offset = -low * scale
    for top, band in _bands(image):
        values = band.astype(np.float32)
        np.nan_to_num(values, copy=False, nan=0.0, posinf=high, neginf=low)
        values *= scale
        values += offset
        np.rint(values, out=values)
        np.clip(values, 0, 255, out=values)
        out[top: top + band.shape[0]] = values
    return out


def _bands(image: Image.Image, pixels: int = 1 << 20) -> Iterator[tuple[int, np.ndarray]]:
    width, height = image.size
    rows = max(1, pixels // width)
    for top in range(0, height, rows):
        yield top, np.asarray(image.crop((0, top, width, min(height, top + rows))))


def _extrema(image: Image.Image) -> tuple[float, float]:
    low, high = (float(v) for v in cast(tuple[float, float], image.getextrema()))
    if np.isfinite(low) and np.isfinite(high):
        return low, high
    # Infinities or NaN in a float image: the range of its finite values.
    finite = [band[np.isfinite(band)] for _, band in _bands(image)]
    finite = [f for f in finite if f.size]
    if not finite:
        return 0.0, 0.0
    return float(min(f.min() for f in finite)), float(max(f.max() for f in finite))


def image_info(path: str | os.PathLike[str]) -> ImageInfo:
    """Size, dimensions (upright) and colour mode, read from the header only."""
    path = Path(os.fspath(path))
    try:
        with _opened(path) as (image, _):
            width, height = image.size
            if _orientation(image) in (5, 6, 7, 8):
                width, height = height, width
            return ImageInfo(
                path=str(path),
                file_size=path.stat().st_size,
                width=width,
                height=height,
                mode=image.mode,
                format=image.format or path.suffix.lstrip(".").upper(),
                frames=_frames(image, path),
            )
    except ImageLoadError:
        raise
    except Exception as exc:
        raise _load_error(path, exc) from exc


def _frames(image: Image.Image, path: Path) -> int:
    """How many frames or pages; 1 when a damaged file cannot say (its first frame may still show)."""
    try:
        return int(getattr(image, "n_frames", 1))
    except _Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - the count is a detail; the first frame is what shows
        log.info("cannot count the frames of %s: %s: %s", path, type(exc).__name__, exc)
        return 1
