"""Bad input: every hostile or odd file gives one clear reason or a classification, never a crash."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviewer.core import inference
from cnnviewer.core.benchmark import BenchmarkConfig, run_benchmark
from cnnviewer.core.catalog import get_entry
from cnnviewer.core.datasets import load_labelled_folder
from cnnviewer.core.errors import ImageLoadError
from cnnviewer.core.images import ImageInfo, image_info, load_image
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import load_model
from tests.badfiles import EITHER, PHOTO, make_bad_files, progressive_jpeg_with_scans
from tests.helpers import PHOTOS_13, ROOT


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return make_bad_files(tmp_path_factory.mktemp("bad"), big=True)


@pytest.fixture(scope="module")
def classifier():
    return Classifier(load_model(get_entry("efficientnet_lite0")))


def test_there_are_at_least_30_kinds(bad_files):
    assert len(bad_files) >= 30


def test_each_file_loads_or_fails_with_its_reason(bad_files):
    for kind, (path, reason) in bad_files.items():
        if reason == EITHER:
            try:
                load_image(path)
            except ImageLoadError as exc:
                assert exc.reason
        elif reason is None:
            image = load_image(path)
            assert image.mode == "RGB" and min(image.size) >= 1, kind
        else:
            with pytest.raises(ImageLoadError) as caught:
                load_image(path)
            assert reason in caught.value.reason, (kind, caught.value.reason)
            assert caught.value.path == str(path)


def test_image_info_gives_the_facts_or_the_loaders_error(bad_files):
    # The preview reads the facts first: a file whose frames cannot be counted still shows its first.
    for kind, (path, reason) in bad_files.items():
        try:
            info = image_info(path)
        except ImageLoadError as exc:
            assert exc.reason and exc.path == str(path), kind
            assert reason is not None, (kind, exc.reason)  # a file that must load must also give its facts
        else:
            assert isinstance(info, ImageInfo) and info.frames >= 1, kind


def test_a_benchmark_decodes_a_bad_file_once_per_model(tmp_path, monkeypatch):
    # The warm-up, the run and the latencies each decoded the first files: a hostile one three times
    # per model. Now the warm-up decodes none and the latencies pass over what the run could not read.
    folder = tmp_path / "set" / "ice_bear"
    folder.mkdir(parents=True)
    hostile = folder / "a-many-scans.jpg"
    hostile.write_bytes(progressive_jpeg_with_scans(20000))
    (folder / "b-bear.jpg").write_bytes(PHOTO.read_bytes())
    reads: list[str] = []

    def counted(path, **options):  # the real loader, counted
        reads.append(os.fspath(path))
        return load_image(path, **options)

    monkeypatch.setattr(inference, "load_image", counted)
    config = BenchmarkConfig(models=("efficientnet_lite0",), batch_size=1, latency_samples=2)
    report = run_benchmark(load_labelled_folder(tmp_path / "set"), config)
    assert reads.count(str(hostile)) == 1
    assert report.models[0].images == 1 and len(report.models[0].latencies_ms) == 1
    assert [s["file"] for s in report.skipped] == [str(hostile)] and "scans" in report.skipped[0]["reason"]


def test_odd_but_valid_files_classify_sensibly(bad_files, classifier):
    # The bear survives every orientation, colour mode and container it was saved in.
    for kind in ("cmyk-jpeg", "grey-8", "grey-16", "palette-transparent", "rgba", "bmp", "tiff-multipage",
                 "webp-animated", "long-name", "non-utf8-name", "ppm", "tga", "jpeg-12000x9000",
                 *(f"exif-{i}" for i in range(1, 9))):
        result = classifier.classify_file(bad_files[kind][0])
        assert result.ok, (kind, result.error)
        assert 296 in [p.index for p in result.predictions], (kind, result.predictions)


def test_a_batch_with_every_kind_goes_on_and_keeps_order(bad_files, classifier):
    paths = [path for path, _ in bad_files.values()]
    results = list(classifier.classify_files(paths, batch_size=8))
    assert [r.path for r in results] == [str(p) for p in paths]
    failed = {r.path for r in results if not r.ok} - {str(p) for p, reason in bad_files.values() if reason == EITHER}
    assert failed == {str(path) for path, reason in bad_files.values() if reason not in (None, EITHER)}
    assert all(r.error for r in results if not r.ok)


def test_a_file_deleted_between_listing_and_reading(tmp_path, classifier):
    (tmp_path / "a-banana.jpg").write_bytes((PHOTOS_13 / "banana_0.jpg").read_bytes())
    victim = tmp_path / "b-soon-gone.jpg"
    victim.write_bytes(PHOTO.read_bytes())
    listing = sorted(tmp_path.iterdir())
    victim.unlink()
    first, second = classifier.classify_files(listing, batch_size=1)
    assert first.ok and not second.ok and "does not exist" in second.error


def test_unreadable_file_as_an_ordinary_user():
    """Root reads everything, so the permission case runs in a child process as user 'nobody'."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start a process as another user; as a user, see test_images")
    folder = tempfile.mkdtemp(prefix="cnnviewer-perm-")
    try:
        os.chmod(folder, 0o755)
        locked = os.path.join(folder, "locked.jpg")
        with open(locked, "wb") as handle:
            handle.write(PHOTO.read_bytes())
        os.chmod(locked, 0)
        # Import as root (the interpreter lives under /root), then become 'nobody' before reading.
        code = ("import os\n"
                "from cnnviewer.core.images import load_image\n"
                "from cnnviewer.core.errors import ImageLoadError\n"
                "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
                f"try:\n    load_image({locked!r})\nexcept ImageLoadError as e:\n    print(e.reason)\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT),
                              timeout=120)
        assert "permission denied" in proc.stdout, proc.stdout + proc.stderr
    finally:
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


def _png_seed() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(PHOTO).convert("RGB").resize((64, 48)).save(buffer, "PNG")
    return buffer.getvalue()


SEEDS = {"jpeg": PHOTO.read_bytes()[:20000], "png": _png_seed()}
FUZZ_EXAMPLES = int(os.environ.get("CNNVIEWER_FUZZ_EXAMPLES", "300"))


def _mutate_and_load(tmp_path, kind, data) -> None:
    original = bytearray(SEEDS[kind])
    mutations = data.draw(st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)),
                                   min_size=1, max_size=12))
    for position, value in mutations:
        original[position] = value
    cut = data.draw(st.integers(0, len(original)))
    path = tmp_path / f"fuzz.{kind}"
    path.write_bytes(bytes(original[:cut]))
    try:
        image = load_image(path)
    except ImageLoadError as exc:
        assert exc.reason and exc.path == str(path)
    else:
        assert image.mode == "RGB"


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(FUZZ, max_examples=FUZZ_EXAMPLES)
@given(kind=st.sampled_from(["jpeg", "png"]), data=st.data())
def test_fuzzed_real_bytes_only_ever_raise_the_loaders_error(tmp_path, kind, data):
    _mutate_and_load(tmp_path, kind, data)


@pytest.mark.slow
@settings(FUZZ, max_examples=20_000)
@given(kind=st.sampled_from(["jpeg", "png"]), data=st.data())
def test_fuzzed_real_bytes_long_run(tmp_path, kind, data):
    _mutate_and_load(tmp_path, kind, data)
