"""The safe loader, on images made here in every colour mode and orientation, and on bad files."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from cnnviewer.core.errors import ImageLoadError
from cnnviewer.core.images import image_info, is_image_path, load_image
from tests.helpers import PHOTOS_13

# A 4x2 picture whose four quadrant colours tell which way up it came out.
TL, TR, BL, BR = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def quadrant_image(width=40, height=20) -> Image.Image:
    array = np.zeros((height, width, 3), np.uint8)
    array[: height // 2, : width // 2] = TL
    array[: height // 2, width // 2 :] = TR
    array[height // 2 :, : width // 2] = BL
    array[height // 2 :, width // 2 :] = BR
    return Image.fromarray(array)


def corners(image: Image.Image) -> tuple:
    w, h = image.size
    return tuple(image.getpixel(xy) for xy in ((w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4),
                                               (3 * w // 4, 3 * h // 4)))


# What the file must store so that, after its EXIF orientation is applied, TL/TR/BL/BR come out upright.
INVERSE_FOR_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(tmp_path, orientation):
    upright = quadrant_image()
    inverse = INVERSE_FOR_ORIENTATION[orientation]
    stored = upright.transpose(inverse) if inverse is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    stored.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.size == upright.size
    assert corners(loaded) == (TL, TR, BL, BR)
    info = image_info(path)
    assert (info.width, info.height) == upright.size


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_greyscale_and_one_bit(tmp_path):
    grey = Image.fromarray(np.full((8, 8), 77, np.uint8), "L")
    assert load_image(_save(grey, tmp_path / "g.png")).getpixel((0, 0)) == (77, 77, 77)
    bits = Image.new("1", (8, 8), 1)
    assert load_image(_save(bits, tmp_path / "b.png")).getpixel((0, 0)) == (255, 255, 255)


def test_rgba_and_la_are_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    out = load_image(_save(rgba, tmp_path / "a.png"))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 0, 0)
    assert out.getpixel((1, 1)) == (255, 255, 255)  # transparent -> white, not black
    la = Image.new("LA", (4, 4), (0, 0))
    assert load_image(_save(la, tmp_path / "la.png")).getpixel((2, 2)) == (255, 255, 255)


def test_palette_with_transparency(tmp_path):
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.putpixel((0, 0), 1)
    path = _save(palette, tmp_path / "p.png", transparency=0)
    out = load_image(path)
    assert out.getpixel((0, 0)) == (10, 200, 30)
    assert out.getpixel((3, 3)) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    out = load_image(_save(cmyk, tmp_path / "c.jpg", quality=95))
    r, g, b = out.getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_gradient_spans_full_range(tmp_path):
    gradient = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (4, 1))
    path = tmp_path / "g16.png"
    Image.fromarray(gradient).save(path)
    assert Image.open(path).mode.startswith("I")
    out = np.asarray(load_image(path))[..., 0]
    assert out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out[0].astype(int)) >= 0)  # scaled, not clipped: still a ramp
    assert len(np.unique(out)) > 200


def test_sixteen_bit_rgb_png(tmp_path):
    # 16-bit RGB PNG written by hand: Pillow reads it as 8-bit RGB with the high byte kept.
    import struct
    import zlib

    width, height = 4, 2
    raw = b"".join(b"\x00" + struct.pack(">HHH", 65535, 32768, 0) * width for _ in range(height))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path = tmp_path / "rgb16.png"
    path.write_bytes(png)
    r, g, b = load_image(path).getpixel((0, 0))
    assert r == 255 and 127 <= g <= 128 and b == 0


def test_float_images_with_infinities_and_nan(tmp_path):
    # The finite values set the range (0..1 here, so times 255); infinities go to its ends, NaN to 0.
    values = np.array([[0, 1, np.nan], [np.inf, -np.inf, 0.5]], np.float32)
    path = tmp_path / "f.tif"
    Image.fromarray(values).save(path)
    assert np.asarray(load_image(path))[..., 0].tolist() == [[0, 255, 0], [255, 0, 128]]


def test_signed_32_bit_images_are_stretched_over_their_range(tmp_path):
    path = tmp_path / "i.tif"
    Image.fromarray(np.array([[-1000, 0, 1000]], np.int32)).save(path)
    assert np.asarray(load_image(path))[..., 0].tolist() == [[0, 128, 255]]


@pytest.mark.parametrize("mode", ["I;16", "F", "RGBA", "LA", "P"])
def test_orientation_is_applied_to_every_colour_mode(tmp_path, mode):
    # The loader turns the image after converting it to RGB; every source mode must come out upright.
    upright = quadrant_image()
    stored = upright.transpose(INVERSE_FOR_ORIENTATION[6])
    grey = np.asarray(stored.convert("L"))
    source = {"I;16": lambda: Image.fromarray(grey.astype(np.uint16) * 257),
              "F": lambda: Image.fromarray(grey.astype(np.float32) / 255),
              "RGBA": lambda: stored.convert("RGBA"), "LA": lambda: stored.convert("LA"),
              "P": lambda: stored.convert("P")}[mode]()
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(source, tmp_path / f"o6-{mode.replace(';', '')}.tif", exif=exif)
    loaded = load_image(path)
    assert loaded.size == upright.size
    expected = [tuple(upright.convert("L").convert("RGB").getpixel(xy)) if mode in ("I;16", "F", "LA") else
                upright.getpixel(xy) for xy in ((10, 5), (30, 5), (10, 15), (30, 15))]
    assert corners(loaded) == tuple(expected), mode


def test_first_frame_of_animation(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    r, g, b = load_image(path).getpixel((4, 4))
    assert r > 200 and b < 50


def test_real_photo_loads_as_rgb():
    image = load_image(PHOTOS_13 / "polar_bear.jpg")
    assert image.mode == "RGB" and min(image.size) > 100


def test_jpeg_draft_never_goes_below_min_side():
    full = load_image(PHOTOS_13 / "polar_bear.jpg")
    reduced = load_image(PHOTOS_13 / "polar_bear.jpg", min_side=64)
    assert min(reduced.size) >= 64
    assert reduced.size[0] <= full.size[0]


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("hello, I am text"), "not an image"),
        (lambda p: p.write_bytes((PHOTOS_13 / "polar_bear.jpg").read_bytes()[:3000]), "truncated"),
        (lambda p: p.mkdir(), "folder"),
    ],
    ids=["empty", "text", "truncated-jpeg", "folder"],
)
def test_bad_files_raise_one_error_type_naming_file_and_reason(tmp_path, make, reason):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert caught.value.path == str(path)
    assert reason in caught.value.reason
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def test_decompression_bomb_is_refused(tmp_path):
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file; permissions cannot be tested as root")
def test_unreadable_file(tmp_path):
    path = _save(Image.new("RGB", (4, 4)), tmp_path / "locked.png")
    path.chmod(0)
    with pytest.raises(ImageLoadError, match="permission denied"):
        load_image(path)


def test_is_image_path():
    assert is_image_path("a/B.JPG") and is_image_path("x.webp")
    assert not is_image_path("notes.txt")
