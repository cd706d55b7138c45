"""Safe image loading: one loader for every path in the app, with one error type and a reason."""

from __future__ import annotations

import errno
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from cnnviewer.core.errors import ImageLoadError

# Pillow's own limit (about 89 megapixels warns, twice that raises) is kept as it is: large real
# photos still open, and a header that claims gigapixels is refused before anything is decoded.
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: Suffixes the file browser and folder scans treat as images (lower case).
IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico",
)


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


def is_image_path(path: str | os.PathLike) -> bool:
    """True when the name looks like an image the loader reads (no file access)."""
    return os.fspath(path).lower().endswith(IMAGE_SUFFIXES)


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


def _open(path: Path) -> Image.Image:
    """Open (not decode) a file, turning every failure into ImageLoadError."""
    try:
        if path.is_dir():
            raise ImageLoadError(path, "this is a folder, not an image file")
        size = path.stat().st_size
    except OSError as exc:
        raise ImageLoadError(path, _reason_for_os_error(exc)) from exc
    if size == 0:
        raise ImageLoadError(path, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(path, f"refused as a possible decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        suffix = path.suffix.lower()
        if suffix in {".heic", ".heif", ".svg", ".avif", ".jxl", ".psd", ".raw", ".cr2", ".nef"}:
            raise ImageLoadError(path, f"unsupported format ({suffix[1:].upper()} files cannot be read)") from exc
        raise ImageLoadError(path, "not an image, or an unsupported format") from exc
    except OSError as exc:
        raise ImageLoadError(path, _reason_for_os_error(exc)) from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB the way a person would expect to see it."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(image)), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale high-bit-depth greyscale to 0..255 rather than clipping it."""
    array = array.astype(np.float64)
    if array.size == 0:
        return array.astype(np.uint8)
    low, high = float(array.min()), float(array.max())
    if 0.0 <= low and high <= 1.0 and array.dtype.kind == "f":
        scaled = array * 255.0
    elif 0.0 <= low and high <= 65535.0:
        scaled = array / 257.0  # 16-bit full range maps onto 8-bit full range
    else:
        scaled = (array - low) / (high - low or 1.0) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def load_image(path: str | os.PathLike, *, min_side: int | None = None) -> Image.Image:
    """Load one image as an upright 8-bit RGB Pillow image.

    ``min_side`` lets JPEGs much larger than needed decode at a reduced scale (DCT scaling):
    the result is never smaller than ``min_side`` on its short side. Every failure raises
    :class:`ImageLoadError` naming the file and the reason.
    """
    path = Path(os.fspath(path))
    image = _open(path)
    try:
        with image:
            if min_side and image.format == "JPEG":
                image.draft("RGB", (min_side, min_side))
            image.load()  # the first frame of animations and multi-page files
            upright = ImageOps.exif_transpose(image) if _has_orientation(image) else image
            rgb = _to_rgb(upright)
            # Leaving the with-block closes the file, never the decoded pixels; only a memory-mapped
            # file (uncompressed formats) still backs them, and only that one is copied (a copy of a
            # 1600 px photo costs a millisecond, a seventh of its decoding).
            return rgb.copy() if getattr(rgb, "map", None) is not None else rgb
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(path, f"refused as a possible decompression bomb: {exc}") from exc
    except MemoryError as exc:
        raise ImageLoadError(path, "the image is too large to decode in the available memory") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as exc:
        raise ImageLoadError(path, _reason_for_decode_error(exc)) from exc


def _has_orientation(image: Image.Image) -> bool:
    try:
        return image.getexif().get(0x0112, 1) not in (0, 1)
    except Exception:  # a broken EXIF block must not stop the picture from showing
        return False


def _reason_for_decode_error(exc: Exception) -> str:
    text = str(exc)
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return "the file is truncated (cut short); part of the image is missing"
    if isinstance(exc, OSError) and exc.errno is not None:
        return _reason_for_os_error(exc)
    return f"the image data is corrupt ({text or type(exc).__name__})"


def image_info(path: str | os.PathLike) -> ImageInfo:
    """Size, dimensions (upright) and colour mode, read from the header only."""
    path = Path(os.fspath(path))
    image = _open(path)
    try:
        with image:
            width, height = image.size
            try:
                if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    width, height = height, width
            except Exception:
                pass
            return ImageInfo(
                path=str(path),
                file_size=path.stat().st_size,
                width=width,
                height=height,
                mode=image.mode,
                format=image.format or path.suffix.lstrip(".").upper(),
                frames=getattr(image, "n_frames", 1),
            )
    except OSError as exc:
        raise ImageLoadError(path, _reason_for_os_error(exc)) from exc
