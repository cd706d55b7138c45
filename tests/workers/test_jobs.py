"""The window's jobs and caches without a window: real models, real photos, run through a Worker."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cnnviewer.core.errors import WeightsMissingError
from cnnviewer.core.ways import FP32, parse_way
from cnnviewer.workers import jobs
from cnnviewer.workers.base import Worker
from tests.helpers import PHOTOS_13, ROOT, second_way

POLAR = str(PHOTOS_13 / "polar_bear.jpg")


def run_to_end(job: Any, *args: Any) -> tuple[Any, list[Any]]:
    """Run ``job`` in a Worker on this thread; (what it returned, what it yielded)."""
    returned: list[Any] = []
    yielded: list[Any] = []
    errored: list[Exception] = []
    worker = Worker(1, job, *args)
    worker.signals.returned.connect(lambda rid, result: returned.append(result))
    worker.signals.yielded.connect(lambda rid, item: yielded.append(item))
    worker.signals.errored.connect(lambda rid, exc: errored.append(exc))
    worker.run()
    assert not errored, errored
    return (returned[0] if returned else None), yielded


def test_model_cache_loads_once_per_model_device_and_way():
    way = parse_way(second_way())
    cache = jobs.ModelCache(capacity=3)
    first, load_ms = cache.get("efficientnet_lite0", "cpu")
    assert load_ms is not None and load_ms > 0
    again, again_ms = cache.get("efficientnet_lite0", "cpu")
    assert again is first and again_ms is None
    other, other_ms = cache.get("efficientnet_lite0", "cpu", way)  # another way of running: another entry
    assert other is not first and other_ms is not None
    assert other.loaded.way == way
    assert cache.get("efficientnet_lite0", "cpu", way)[0] is other


def test_model_cache_forgets_the_least_recently_used_beyond_its_capacity():
    cache = jobs.ModelCache(capacity=2)
    lite0, _ = cache.get("efficientnet_lite0", "cpu")
    cache.get("efficientnet_lite1", "cpu")
    assert cache.get("efficientnet_lite0", "cpu")[1] is None  # used again: now the most recent
    cache.get("efficientnet_lite2", "cpu")  # evicts lite1, not lite0
    assert cache.get("efficientnet_lite0", "cpu") == (lite0, None)
    assert cache.get("efficientnet_lite1", "cpu")[1] is not None  # it was forgotten: loaded again


def test_model_cache_loads_a_model_once_when_threads_ask_together() -> None:
    cache = jobs.ModelCache()
    start = threading.Barrier(3)
    got: list[tuple[Any, float | None]] = []

    def ask() -> None:
        start.wait()
        got.append(cache.get("efficientnet_lite0", "cpu"))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(classifier) for classifier, _ in got}) == 1
    assert sum(load_ms is not None for _, load_ms in got) == 1


def test_explanation_cache_keeps_the_newest_few() -> None:
    cache = jobs.ExplanationCache(capacity=2)
    keys = [("a.jpg", 1, "m", "cpu", FP32, i) for i in range(3)]
    values: list[Any] = [object(), object(), object()]
    cache.put(keys[0], values[0])
    cache.put(keys[1], values[1])
    assert cache.get(keys[0]) is values[0]  # read: now newer than keys[1]
    cache.put(keys[2], values[2])
    assert cache.get(keys[1]) is None and cache.get(keys[0]) is values[0] and cache.get(keys[2]) is values[2]


def test_classify_job_returns_the_top5_and_the_thread_it_ran_on(qapp):
    cache = jobs.ModelCache()
    outcome, _ = run_to_end(jobs.classify_job, cache, POLAR, "efficientnet_lite0", "cpu", 5)
    assert isinstance(outcome, jobs.ClassifyOutcome)
    assert outcome.path == POLAR and outcome.model == "efficientnet_lite0" and outcome.device == "cpu"
    assert [p.index for p in outcome.classification.predictions][:1] == [296]
    assert len(outcome.classification.predictions) == 5 and outcome.load_ms is not None
    again, _ = run_to_end(jobs.classify_job, cache, POLAR, "efficientnet_lite0", "cpu", 3)
    assert again.load_ms is None and len(again.classification.predictions) == 3


def test_compare_job_goes_on_past_a_model_without_weights(qapp):
    cache = jobs.ModelCache()
    _, items = run_to_end(jobs.compare_job, cache, POLAR, ["resnet50", "efficientnet_lite0"], "cpu", 5)
    assert [model for model, _ in items] == ["resnet50", "efficientnet_lite0"]
    assert isinstance(items[0][1], WeightsMissingError) and "resnet50-11ad3fa6.pth" in str(items[0][1])
    assert items[1][1].classification.predictions[0].index == 296


def test_preview_job_gives_a_qimage_that_owns_its_pixels(qapp):
    data, _ = run_to_end(jobs.preview_job, POLAR)
    assert isinstance(data, jobs.PreviewData) and data.path == POLAR
    assert (data.image.width(), data.image.height()) == (563, 565) and data.info.width == 563


def test_thumbnails_job_yields_none_for_a_bad_file(qapp, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    _, items = run_to_end(jobs.thumbnails_job, [POLAR, str(bad)], 64)
    assert [path for path, _ in items] == [POLAR, str(bad)]
    assert max(items[0][1].width(), items[0][1].height()) == 64 and items[1][1] is None


@pytest.mark.parametrize("size", [1, 3])
def test_pil_to_qimage_copies_the_pixels(qapp, size):
    from PIL import Image

    image = Image.new("RGB", (size, 2), (10, 20, 30))
    qimage = jobs.pil_to_qimage(image)
    image.paste((200, 200, 200), (0, 0, size, 2))  # the QImage must not see later changes
    assert qimage.pixelColor(0, 0).getRgb()[:3] == (10, 20, 30)


def test_explain_job_explains_the_class_the_classification_shows(qapp):
    """The class index passed is the table's top-1; the map's probability is the classification's."""
    cache, explanations = jobs.ModelCache(), jobs.ExplanationCache()
    grace = str(ROOT / "resources" / "samples" / "grace_hopper.jpg")
    outcome, _ = run_to_end(jobs.classify_job, cache, grace, "efficientnet_lite0", "cpu", 5)
    top = outcome.classification.predictions[0]
    explained, _ = run_to_end(jobs.explain_job, cache, explanations, grace, "efficientnet_lite0", "cpu", FP32,
                              top.index)
    assert (explained.class_index, f"{explained.probability:.4f}") == (top.index, f"{top.probability:.4f}")
    assert explained.way == explained.map_way == FP32
    assert explained.heat.width() > 0 and not explained.overlay_thumbnail.isNull()


def test_a_way_without_gradients_borrows_the_fp32_copy_for_the_map(qapp):
    way = parse_way(second_way())
    cache, explanations = jobs.ModelCache(), jobs.ExplanationCache()
    outcome, _ = run_to_end(jobs.classify_job, cache, POLAR, "efficientnet_lite0", "cpu", 5, way)
    top = outcome.classification.predictions[0]
    explained, _ = run_to_end(jobs.explain_job, cache, explanations, POLAR, "efficientnet_lite0", "cpu", way,
                              top.index)
    assert (explained.way, explained.map_way) == (way, FP32)
    assert f"{explained.probability:.4f}" == f"{top.probability:.4f}"  # the classification's, not FP32's
