"""core.gpu_decode on the CPU: the same inputs and classes as the present path, and every other file through it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnviewer.core.catalog import get_entry
from cnnviewer.core.errors import ImageLoadError
from cnnviewer.core.gpu_decode import decode_batch, device_batches, device_decodable
from cnnviewer.core.images import load_image
from cnnviewer.core.inference import Classifier, make_transform
from cnnviewer.core.models import load_model
from tests.helpers import labelled_files

LITE0 = get_entry("efficientnet_lite0")
PRE = LITE0.preprocessing
# One level of 255 after Lite0's normalisation (std 0.502).
LEVEL = 1 / 255 / min(PRE.std)


def present_path(path: str | Path, min_side: int | None = PRE.resize_size) -> torch.Tensor:
    """What Classifier.decode makes of a file today: load_image (reduced-size JPEG decode) and the transform."""
    return make_transform(PRE)(load_image(path, min_side=min_side))


def val_photos(count: int) -> list[str]:
    return [str(p) for p, _ in labelled_files("imagenet-val-100")[:count]]


def large_photos() -> list[str]:
    """The baseline JPEGs of samples-88 of 600 px and more: the present path decodes them at reduced size."""
    return [str(p) for p, _ in labelled_files("imagenet-samples-88")
            if max(Image.open(p).size) >= 600 and device_decodable(p.read_bytes()) is None]


def test_a_batch_of_photos_is_one_float_tensor_of_the_models_input_size():
    batch = decode_batch(val_photos(5), PRE, "cpu")
    assert batch.tensor is not None
    assert batch.tensor.shape == (5, 3, PRE.crop_size, PRE.crop_size)
    assert batch.tensor.dtype == torch.float32 and batch.tensor.device.type == "cpu"
    assert batch.errors == (None,) * 5 and batch.on_device == 5


def test_inputs_equal_the_present_path_within_the_measured_tolerance():
    # Measured (benchmarks/precisions.py --check-gpu-decode, CPU): 0 difference on imagenet-val-100;
    # on photos of 600 px and more, at most 0.12 against a whole-size decode (torchvision's
    # resize of a whole image against Pillow's) and 0.91 against the reduced-size decode.
    small = val_photos(12)
    batch = decode_batch(small, PRE, "cpu")
    reference = torch.stack([present_path(p) for p in small])
    assert batch.tensor is not None and batch.on_device == len(small)
    assert (batch.tensor - reference).abs().max() <= 2 * LEVEL
    large = large_photos()
    batch = decode_batch(large, PRE, "cpu")
    whole = torch.stack([present_path(p, min_side=None) for p in large])
    assert batch.tensor is not None and batch.on_device == len(large)
    difference = (batch.tensor - whole).abs()
    assert difference.max() <= 0.15
    assert difference.mean() <= LEVEL  # a level at a few pixels, not a shifted picture


def test_lite0_top5_through_this_path_equals_the_present_path():
    # Measured: the same top-5 (members and order) on 100 of 100 (val-100) and 88 of 88 (samples-88).
    paths = large_photos() + [str(p) for p, _ in labelled_files("imagenet-samples-88")[:16]]
    assert len(large_photos()) >= 8
    classifier = Classifier(load_model(LITE0))
    batch = decode_batch(paths, PRE, "cpu")
    assert batch.tensor is not None and batch.errors == (None,) * len(paths)
    mine = [[p.index for p in top] for top in classifier.predict_batch(batch.tensor)]
    theirs = [[p.index for p in top] for top in classifier.predict_batch(torch.stack([present_path(p) for p in paths]))]
    same = sum(a == b for a, b in zip(mine, theirs, strict=True))
    assert same >= len(paths) - 1, f"{same} of {len(paths)}"
    assert sum(a[0] == b[0] for a, b in zip(mine, theirs, strict=True)) == len(paths)


def _variants(tmp_path: Path) -> dict[str, Path]:
    """The files the device decoder must leave to the present path, made from a real photo."""
    source = Image.open(val_photos(1)[0]).convert("RGB")
    files = {}
    files["png"] = tmp_path / "photo.png"
    source.save(files["png"])
    files["grey"] = tmp_path / "grey.jpg"
    source.convert("L").save(files["grey"], quality=90)
    files["progressive"] = tmp_path / "progressive.jpg"
    source.save(files["progressive"], quality=90, progressive=True)
    files["cmyk"] = tmp_path / "cmyk.jpg"
    source.convert("CMYK").save(files["cmyk"], quality=90)
    files["rotated"] = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees to be upright
    source.save(files["rotated"], quality=90, exif=exif)
    files["png-named-jpg"] = tmp_path / "really-a-png.jpg"
    source.save(files["png-named-jpg"], format="PNG")
    return files


def test_files_the_device_decoder_does_not_take_give_the_present_paths_result(tmp_path):
    files = _variants(tmp_path)
    baseline = tmp_path / "baseline.jpg"
    Image.open(val_photos(1)[0]).convert("RGB").save(baseline, quality=90)
    assert device_decodable(baseline.read_bytes()) is None
    reasons = {"png": "not a JPEG", "grey": "1 colour components", "progressive": "progressive",
               "cmyk": "Adobe colour transform", "rotated": "EXIF orientation", "png-named-jpg": "not a JPEG"}
    for name, path in files.items():
        assert reasons[name] in (device_decodable(path.read_bytes()) or ""), name
    paths = [baseline, *files.values()]
    batch = decode_batch(paths, PRE, "cpu")
    assert batch.on_device == 1 and batch.errors == (None,) * len(paths)
    assert batch.tensor is not None
    for row, path in zip(batch.tensor[1:], files.values(), strict=True):
        assert torch.equal(row, present_path(path)), path.name


def test_a_truncated_jpeg_gives_load_images_sentence_and_the_rest_go_on(tmp_path):
    whole = Path(val_photos(1)[0]).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    missing = tmp_path / "gone.jpg"
    with pytest.raises(ImageLoadError) as expected:
        load_image(cut)
    paths = [cut, *val_photos(2), empty, missing]
    batch = decode_batch(paths, PRE, "cpu")
    assert batch.errors[0] == expected.value.reason
    assert "truncated" in batch.errors[0]
    assert batch.errors[1:3] == (None, None)
    for error, path in zip(batch.errors[3:], (empty, missing), strict=True):
        with pytest.raises(ImageLoadError) as reason:
            load_image(path)
        assert error == reason.value.reason
    assert batch.tensor is not None and batch.tensor.shape[0] == 2


def test_a_jpeg_with_data_after_its_end_marker_is_left_to_the_present_path(tmp_path):
    data = Path(val_photos(1)[0]).read_bytes()
    assert device_decodable(data) is None
    assert device_decodable(data + b"trailing") is not None
    assert device_decodable(data + b"\x00" * 8) is None  # padding some writers add


def test_batches_come_in_order_and_stop_when_cancelled():
    paths = val_photos(10)
    batches = list(device_batches(paths, PRE, "cpu", batch_size=4, read_threads=2))
    assert [len(b.paths) for b in batches] == [4, 4, 2]
    assert [p for b in batches for p in b.paths] == paths
    one = decode_batch(paths[4:8], PRE, "cpu")
    assert batches[1].tensor is not None and one.tensor is not None
    assert torch.equal(batches[1].tensor, one.tensor)
    seen = []
    for batch in device_batches(paths, PRE, "cpu", batch_size=4, should_cancel=lambda: len(seen) >= 1):
        seen.append(batch)
    assert len(seen) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (nvJPEG decoding on the device)")
def test_on_a_gpu_the_batch_is_decoded_there_and_agrees_with_the_cpu():
    paths = large_photos() + val_photos(8)
    batches = list(device_batches(paths, PRE, "cuda", batch_size=4))
    gpu = torch.cat([b.tensor for b in batches if b.tensor is not None])
    assert gpu.device.type == "cuda" and sum(b.on_device for b in batches) == len(paths)
    cpu = decode_batch(paths, PRE, "cpu").tensor
    assert cpu is not None
    # nvJPEG's IDCT and chroma upsampling are not libjpeg-turbo's: a few levels, like the resize.
    assert (gpu.cpu() - cpu).abs().mean() <= 2 * LEVEL
    classifier = Classifier(load_model(LITE0, "cuda"))
    on_gpu = [t[0].index for t in classifier.predict_batch(gpu)]
    on_cpu = [t[0].index for t in classifier.predict_batch(cpu.cuda())]
    assert sum(a == b for a, b in zip(on_gpu, on_cpu, strict=True)) >= len(paths) - 1


def test_the_classifier_runs_the_device_path_in_order_with_every_files_result(tmp_path):
    # Classifier(device_decode=True) on the CPU takes exactly the code a GPU model takes by default.
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(Path(val_photos(1)[0]).read_bytes()[:2000])
    paths = [*val_photos(5), str(cut), *val_photos(9)[5:]]
    loaded = load_model(LITE0)
    device = Classifier(loaded, device_decode=True)
    present = Classifier(loaded)
    assert present.device_decode is False  # a CPU model keeps the present path unless asked
    theirs = list(present.classify_files(paths, batch_size=4))
    mine = list(device.classify_files(paths, batch_size=4))
    assert [r.path for r in mine] == [str(p) for p in paths]
    assert [r.error for r in mine] == [r.error for r in theirs]
    assert mine[5].error and "truncated" in mine[5].error
    assert [[p.index for p in r.predictions] for r in mine] == [[p.index for p in r.predictions] for r in theirs]
    assert all(r.timings.decode_ms > 0 for r in mine)
    # The device path times decoding and preprocessing as one figure; the present path times each.
    assert all(r.timings.preprocess_ms == 0 for r in mine) and all(r.timings.preprocess_ms > 0 for r in theirs if r.ok)
