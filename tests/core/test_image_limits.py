"""The loader's limits on hostile files: pixels, JPEG scans, decode time, and memory within a few RGB images."""

from __future__ import annotations

import io
import math
import struct
import time

import pytest
from PIL import Image

from cnnviewer.core import images
from cnnviewer.core.errors import ImageLoadError
from cnnviewer.core.images import image_info, load_image
from tests.badfiles import (
    baseline_jpeg_with_scans,
    measure_load,
    png_16bit_grey,
    png_chunk,
    png_header_only,
    png_rgba,
    progressive_jpeg_with_scans,
    tiff_float,
)

LIMIT_MB = 1536  # the most one file may cost above an interpreter that only imports the loader
LIMIT_S = 10  # and the most processor time it may take
# The hostile files reported against the loader, at their size: (suffix, builder, what the refusal names).
ISSUE_FILES = {
    "png-16bit-13000x13000": ("png", lambda: png_16bit_grey(13000, 13000), "150-megapixel limit"),
    "tiff-float-13000x13000": ("tif", lambda: tiff_float(13000, 13000), "150-megapixel limit"),
    "png-rgba-13000x13000": ("png", lambda: png_rgba(13000, 13000), "150-megapixel limit"),
    "jpeg-20000-scans": ("jpg", lambda: progressive_jpeg_with_scans(20000), "more than 100 scans"),
}
# The same kinds of file, small enough to load: what each may cost, in decoded RGB images.
KINDS = {"png-16bit": ("png", png_16bit_grey), "tiff-float": ("tif", tiff_float), "png-rgba": ("png", png_rgba)}


@pytest.fixture(scope="module")
def baseline_mb() -> float:
    return measure_load(None)["peak_mb"]


@pytest.mark.parametrize("kind", ISSUE_FILES)
def test_issue_files_are_refused_in_time_and_memory(tmp_path, baseline_mb, kind):
    suffix, build, refusal = ISSUE_FILES[kind]
    path = tmp_path / f"{kind}.{suffix}"
    path.write_bytes(build())
    result = measure_load(path)
    assert refusal in result["outcome"], result
    assert result["peak_mb"] - baseline_mb < LIMIT_MB, result
    assert result["cpu_s"] < LIMIT_S, result


@pytest.mark.parametrize("kind", KINDS)
def test_memory_is_a_few_rgb_images_not_float64_copies(tmp_path, baseline_mb, kind):
    # 24 megapixels: the RGB result is 92 MB as Pillow holds it (4 bytes a pixel). An RGBA source is as
    # large, so 2 of those is the floor there; before the limits a 16-bit PNG cost 8 times that.
    suffix, build = KINDS[kind]
    path = tmp_path / f"{kind}.{suffix}"
    path.write_bytes(build(6000, 4000))
    result = measure_load(path)
    assert result["outcome"] == "loaded 6000 x 4000", result
    rgb_mb = 6000 * 4000 * 4 / 2**20
    assert result["peak_mb"] - baseline_mb < 2.25 * rgb_mb, (result, baseline_mb)


def _progressive_jpeg_444(width: int, height: int) -> bytes:
    # libjpeg keeps every coefficient of a progressive file while it decodes: 6 bytes a pixel at 4:4:4.
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 130, 140)).save(buffer, "JPEG", progressive=True, subsampling=0)
    return buffer.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("kind", [*KINDS, "jpeg-progressive-444"])
def test_the_largest_image_the_limit_lets_through_stays_under_1_5_gb(tmp_path, baseline_mb, kind):
    side = math.isqrt(images.MAX_MEGAPIXELS * 1_000_000)
    suffix, build = KINDS.get(kind, ("jpg", _progressive_jpeg_444))
    path = tmp_path / f"{kind}.{suffix}"
    path.write_bytes(build(side, side))
    result = measure_load(path)
    assert result["outcome"] == f"loaded {side} x {side}", result
    assert result["peak_mb"] - baseline_mb < LIMIT_MB, result
    assert result["cpu_s"] < LIMIT_S, result


def test_the_pixel_limit_is_read_from_the_header(tmp_path):
    # 156 megapixels: under Pillow's own bomb limit (179), over this loader's.
    path = tmp_path / "big.png"
    path.write_bytes(png_header_only(12500, 12500))
    for read in (load_image, image_info):
        with pytest.raises(ImageLoadError) as caught:
            read(path)
        assert "12500 x 12500 pixels (156 megapixels)" in caught.value.reason
        assert "150-megapixel limit" in caught.value.reason


def test_pillows_own_bomb_limit_is_named_as_the_same_limit(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(50000, 50000))
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert caught.value.reason.startswith("the image is larger than the 150-megapixel limit for one image")
    assert "2,500 megapixels" in caught.value.reason


def test_jpeg_scan_limit(tmp_path):
    at_limit, over = tmp_path / "at.jpg", tmp_path / "over.jpg"
    at_limit.write_bytes(progressive_jpeg_with_scans(images.MAX_JPEG_SCANS, size=(64, 48)))
    over.write_bytes(progressive_jpeg_with_scans(images.MAX_JPEG_SCANS + 1, size=(64, 48)))
    assert load_image(at_limit).size == (64, 48)
    assert load_image(at_limit, min_side=16).size == (32, 24)  # decoded at half size, the same scans
    for min_side in (None, 16):
        with pytest.raises(ImageLoadError, match=r"more than 100 scans \(real photos have about 10\)"):
            load_image(over, min_side=min_side)


def test_sequential_jpegs_are_counted_only_where_libjpeg_would_read_scan_after_scan(tmp_path):
    # Interleaved (most photos): the second scan is libjpeg's error, at once, so nothing is counted.
    interleaved, single = tmp_path / "interleaved.jpg", tmp_path / "single.jpg"
    interleaved.write_bytes(baseline_jpeg_with_scans(1000))
    single.write_bytes(baseline_jpeg_with_scans(images.MAX_JPEG_SCANS + 1, one_component=True))
    started = time.process_time()
    with pytest.raises(ImageLoadError, match="corrupt"):
        load_image(interleaved)
    assert time.process_time() - started < 2
    # A first scan with one of three components: libjpeg reads scans until the end, so they count.
    with pytest.raises(ImageLoadError, match="more than 100 scans"):
        load_image(single)


def test_scans_in_an_exif_thumbnail_are_not_the_photos(tmp_path):
    # The EXIF block holds a whole JPEG, scans and end marker included: only the photo's own segments
    # count, neither adding the thumbnail's scans nor stopping at its end.
    thumbnail = io.BytesIO()
    Image.new("RGB", (16, 16)).save(thumbnail, "JPEG", progressive=True)
    payload = b"Exif\0\0" + thumbnail.getvalue()  # not valid EXIF, but a block full of markers
    block = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    at_limit, over = tmp_path / "at.jpg", tmp_path / "over.jpg"
    for path, scans in ((at_limit, images.MAX_JPEG_SCANS), (over, images.MAX_JPEG_SCANS + 1)):
        photo = progressive_jpeg_with_scans(scans, size=(64, 48))
        path.write_bytes(photo[:2] + block + photo[2:])
    assert load_image(at_limit).size == (64, 48)
    with pytest.raises(ImageLoadError, match="scans"):
        load_image(over)


def test_decode_time_budget(tmp_path, monkeypatch):
    # Two hundred thousand empty chunks: Pillow parses each in Python, a second of work or more.
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    data = png.getvalue()
    path = tmp_path / "chunks.png"
    path.write_bytes(data[:33] + png_chunk(b"abCd", b"") * 200_000 + data[33:])
    monkeypatch.setattr(images, "MAX_DECODE_SECONDS", 0.05)
    for read in (load_image, image_info):
        started = time.thread_time()
        with pytest.raises(ImageLoadError) as caught:
            read(path)
        assert "more than 0.05 seconds of processor time, the limit for one image" in caught.value.reason
        assert time.thread_time() - started < 0.5


def test_an_icon_whose_table_understates_its_size_is_refused_too(tmp_path, monkeypatch):
    # The icon's table says 16 x 16; the PNG inside is 64 x 64. Pillow decodes icons while opening
    # them, within its own bomb limit, and the size checked after opening is the real one.
    inner = io.BytesIO()
    Image.new("RGBA", (64, 64), (10, 20, 30, 255)).save(inner, "PNG")
    entry = struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(inner.getvalue()), 22)
    path = tmp_path / "icon.ico"
    path.write_bytes(struct.pack("<HHH", 0, 1, 1) + entry + inner.getvalue())
    assert load_image(path).size == (64, 64)
    monkeypatch.setattr(images, "MAX_MEGAPIXELS", 0.001)  # 1,000 pixels: the table's 256 pass, 4,096 do not
    for read in (load_image, image_info):
        with pytest.raises(ImageLoadError, match="64 x 64 pixels"):
            read(path)
