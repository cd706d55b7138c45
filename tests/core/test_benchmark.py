"""The benchmark run on real photos with the embedded models: accuracy, partial results, reports."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cnnviewer.core.benchmark import BenchmarkConfig, BenchmarkReport, default_models, run_benchmark
from cnnviewer.core.datasets import load_labelled_folder
from cnnviewer.core.report import load_json, markdown, save_json, write_all
from cnnviewer.core.ways import BF16, FP32, ONNXRUNTIME, parse_way
from tests.helpers import PHOTOS_13, VAL_100, labelled_files, second_way, top1_accuracy, top5_accuracy


@pytest.fixture(scope="module")
def paths_a_module_fixture_sees():
    """Where cnnviewer would read and write, as a module-scoped fixture (set up before any test) sees it."""
    from cnnviewer.core.catalog import checkpoints_dir
    from cnnviewer.core.paths import config_dir, data_dir, log_file

    return {"weights": checkpoints_dir(), "config": config_dir(), "data": data_dir(), "log": log_file(),
            "home": Path.home()}


@pytest.fixture(scope="module")
def val_report(paths_a_module_fixture_sees):
    dataset = load_labelled_folder(VAL_100)
    config = BenchmarkConfig(models=("efficientnet_lite0", "efficientnet_lite1", "resnet50"), batch_size=16)
    return run_benchmark(dataset, config)


def test_module_fixtures_see_the_sessions_home_not_the_developers(paths_a_module_fixture_sees, session_home):
    """A developer's cached ResNet50 or settings must not reach val_report (it would then run resnet50)."""
    for name, path in paths_a_module_fixture_sees.items():
        assert path.is_relative_to(session_home), (name, path)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1"])
def test_the_benchmark_gives_the_classifiers_answers_on_val_100(val_report, top5_cache, name):
    result = val_report.result(name)
    assert result.images == 100 and result.failed == 0 and result.complete
    files = labelled_files("imagenet-val-100")
    expected = dict(zip((str(p) for p, _ in files), top5_cache.get(name, "fp32"), strict=True))
    assert {row.file: tuple(row.top5[name]) for row in val_report.images} == expected
    answers = [expected[str(p)] for p, _ in files]
    assert result.top1 * 100 == pytest.approx(top1_accuracy(answers, files))
    assert result.top5 * 100 == pytest.approx(top5_accuracy(answers, files))


def test_lite0_reproduces_the_reference_on_val_100(val_report):
    lite0 = val_report.result("efficientnet_lite0")
    assert lite0.images == 100 and lite0.failed == 0 and lite0.complete
    assert abs(lite0.top1 * 100 - 88.0) <= 2 and abs(lite0.top5 * 100 - 98.0) <= 2
    assert lite0.top1_ci[0] < lite0.top1 < lite0.top1_ci[1]
    assert lite0.throughput_ips > 0 and lite0.latency_ms["p50"] > 0 and not lite0.partial and lite0.paused_s == 0
    assert lite0.latency_ms["p50"] <= lite0.latency_ms["p90"] <= lite0.latency_ms["p99"]
    assert len(lite0.latencies_ms) == 20
    assert lite0.peak_rss_mb > lite0.param_mb > 10 and lite0.published["acc1"] == 75.1
    assert lite0.rss_before_mb > lite0.peak_rss_mb  # the figure is what the model added, not the process


def test_a_model_without_weights_is_reported_and_the_others_go_on(val_report):
    resnet = val_report.result("resnet50")
    assert resnet.error and "resnet50-11ad3fa6.pth" in resnet.error and resnet.images == 0
    assert resnet.error_kind == "weights_missing" and resnet.throughput_ips is None and resnet.latency_ms is None
    assert val_report.complete and not val_report.cancelled
    assert [(c["a"], c["b"]) for c in val_report.comparisons] == [("efficientnet_lite0", "efficientnet_lite1")]
    pair = val_report.comparisons[0]
    assert 0 <= pair["p_value"] <= 1 and pair["speed_ratio"] > 0
    assert set(val_report.per_class) == {"efficientnet_lite0", "efficientnet_lite1"}
    assert sum(c[1] for c in val_report.per_class["efficientnet_lite0"].values()) == 100


def test_reports_on_disk_round_trip(val_report, tmp_path):
    written = write_all(val_report, tmp_path)
    loaded = load_json(written["json"])
    assert json.loads(json.dumps(loaded.to_json())) == json.loads(json.dumps(val_report.to_json()))
    assert loaded.result("efficientnet_lite0").top1_ci == val_report.result("efficientnet_lite0").top1_ci
    data = json.loads(written["json"].read_text())
    model = data["models"][0]
    for key in ("name", "top1", "top5", "top1_ci", "top5_ci", "images", "throughput_ips", "latency_ms",
                "peak_rss_mb", "load_s"):
        assert key in model
    assert set(model["latency_ms"]) == {"p50", "p90", "p99"}
    assert "skipped" in data and data["environment"]["torch"] and data["environment"]["batch_size"] == 16
    text = written["markdown"].read_text()
    assert "| Name | Time, s | Peak memory above start (MB) | Top-1 acc, % | Top-5 acc, % |" in text
    # A speed claim only where the interval of the ratio excludes 1 (it depends on the machine's load).
    assert ("faster than" in text or "No clear speed difference" in text)
    assert "not significant" in text and "intervals are wide" in text
    for name in ("accuracy", "throughput", "memory", "latency", "accuracy_vs_latency"):
        with Image.open(written[f"{name}.png"]) as chart:
            assert chart.size == (1200, 600)
        assert written[f"{name}.svg"].read_bytes().lstrip().startswith((b"<?xml", b"<svg"))
    assert "<svg" in written["html"].read_text(encoding="utf-8")


def test_results_csv_has_a_row_per_image_and_model_with_top5(photos_13_run):
    report, results_csv = photos_13_run
    with open(results_csv, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 26
    assert {r["model"] for r in rows} == {"efficientnet_lite0", "efficientnet_lite1"}
    bear = next(r for r in rows if r["file"].endswith("polar_bear.jpg") and r["model"] == "efficientnet_lite0")
    assert bear["truth_index"] == "296" and bear["index1"] == "296" and bear["correct_top1"] == "1"
    assert float(bear["probability1"]) >= float(bear["probability5"])
    assert report.result("efficientnet_lite0").top5 == 1.0  # every everyday label matched a class


def test_cancel_keeps_the_partial_results_on_disk(tmp_path):
    dataset = load_labelled_folder(VAL_100)
    seen = []
    saved = []

    def on_update(report):
        save_json(report, tmp_path / "report.json")
        saved.append(report.cancelled)

    report = run_benchmark(dataset, BenchmarkConfig(models=("efficientnet_lite0", "efficientnet_lite1"),
                                                    batch_size=8),
                           progress=seen.append, should_cancel=lambda: len(seen) >= 4, on_update=on_update)
    assert report.cancelled and not report.complete
    lite0 = report.result("efficientnet_lite0")
    assert 0 < lite0.images < 100 and not lite0.complete and lite0.partial
    assert report.result("efficientnet_lite1") is None
    on_disk = load_json(tmp_path / "report.json")
    assert on_disk.cancelled and on_disk.result("efficientnet_lite0").images == lite0.images
    assert on_disk.result("efficientnet_lite0").partial and on_disk.result("efficientnet_lite0").throughput_ips is None
    assert "cancelled" in markdown(on_disk)


def test_bad_files_are_skipped_with_reasons_and_left_out_of_the_accuracy(tmp_path):
    shutil.copy(PHOTOS_13 / "polar_bear.jpg", tmp_path / "polar_bear.jpg")
    shutil.copy(PHOTOS_13 / "banana_0.jpg", tmp_path / "banana_0.jpg")
    (tmp_path / "broken.jpg").write_bytes((PHOTOS_13 / "coral.jpg").read_bytes()[:1500])
    (tmp_path / "labels.csv").write_text("file,label\npolar_bear.jpg,polar bear\nbroken.jpg,coral reef\n"
                                         "banana_0.jpg,banana\ngone.jpg,banana\n")
    dataset = load_labelled_folder(tmp_path)
    assert dataset.missing == [str(tmp_path / "gone.jpg")]  # named in labels.csv: listed before the run
    report = run_benchmark(dataset, BenchmarkConfig(models=("efficientnet_lite0",), batch_size=2))
    lite0 = report.result("efficientnet_lite0")
    assert lite0.images == 2 and lite0.failed == 1 and lite0.top1 == 1.0
    reasons = {s["file"].rsplit("/", 1)[-1]: s["reason"] for s in report.skipped}
    assert set(reasons) == {"broken.jpg"} and "truncated" in reasons["broken.jpg"]
    assert any("gone.jpg" in problem and "do not exist" in problem for problem in report.label_problems)
    text = markdown(report)
    assert "1 file(s) could not be read" in text and "gone.jpg" in text


def test_default_models_are_the_embedded_three_without_lab_report_weights():
    names, why = default_models()
    assert names == ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
    assert "not all on this machine" in why


def test_from_json_rejects_garbage(tmp_path):
    from cnnviewer.core.report import ReportError

    (tmp_path / "report.json").write_text('{"models": [{"nonsense": 1}]}')
    with pytest.raises(ReportError, match="not a cnnviewer report.json"):
        load_json(tmp_path / "report.json")
    assert isinstance(BenchmarkReport.from_json({"root": "x", "config": {}, "environment": {}}), BenchmarkReport)


def test_ways_of_running_are_compared_on_the_same_images(tmp_path):
    way = second_way()
    dataset = load_labelled_folder(VAL_100)
    config = BenchmarkConfig(models=("efficientnet_lite0", "efficientnet_lite1"), batch_size=16, limit=20,
                             ways=(FP32, parse_way(way)))
    report = run_benchmark(dataset, config)
    names = [m.name for m in report.models]
    assert names == ["efficientnet_lite0 (fp32)", f"efficientnet_lite0 ({way})",
                     "efficientnet_lite1 (fp32)", f"efficientnet_lite1 ({way})"]
    assert [(m.model, m.run_as) for m in report.models] == [
        ("efficientnet_lite0", "fp32"), ("efficientnet_lite0", way),
        ("efficientnet_lite1", "fp32"), ("efficientnet_lite1", way)]
    assert all(m.images == 20 and m.complete for m in report.models)
    # One model two ways, or two models one way; never lite0 fp32 against lite1 in the other way.
    pairs = {frozenset((c["a"], c["b"])) for c in report.comparisons}
    assert pairs == {frozenset(names[:2]), frozenset(names[2:]), frozenset((names[0], names[2])),
                     frozenset((names[1], names[3]))}
    from cnnviewer.core.benchmark import against_fp32

    rows = against_fp32(report)
    assert [r["name"] for r in rows] == [names[1], names[3]]
    for row, (fast, base) in zip(rows, ((names[1], names[0]), (names[3], names[2])), strict=True):
        differ = sum(1 for r in report.images if r.top5[fast][0] != r.top5[base][0])
        assert row["differ"] == differ and row["images"] == 20
        assert row["change_points"] == pytest.approx((report.result(fast).top1 - report.result(base).top1) * 100)
        assert abs(row["change_points"]) <= 5.0  # at most one of the 20 answers changed
        assert row["speed"] == pytest.approx(report.result(fast).throughput_ips / report.result(base).throughput_ips)
    text = markdown(report)
    assert "## Ways of running against FP32" in text and f"| {names[1]} |" in text
    assert "run as fp32, " + way in text
    written = write_all(report, tmp_path)
    again = load_json(written["json"])
    assert [(m.model, m.run_as) for m in again.models] == [(m.model, m.run_as) for m in report.models]


def test_reports_written_before_ways_of_running_still_open(val_report, tmp_path):
    data = json.loads(json.dumps(val_report.to_json()))
    for model in data["models"]:
        del model["model"], model["run_as"]
    data["environment"]["precision"] = "bf16"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    old = load_json(path)
    assert [(m.model, m.run_as) for m in old.models] == [(m.name, "bf16") for m in val_report.models]


def test_a_config_without_a_way_of_running_or_with_a_label_for_one_is_refused():
    from cnnviewer.core.errors import CnnviewerError

    with pytest.raises(CnnviewerError, match="No way of running was chosen"):
        BenchmarkConfig(models=("efficientnet_lite0",), ways=())
    with pytest.raises(CnnviewerError, match="'bf16' is not a way of running"):
        BenchmarkConfig(models=("efficientnet_lite0",), ways=(FP32, "bf16"))


def test_one_way_of_running_is_recorded_as_that_way():
    from cnnviewer.core.benchmark import environment, environment_line

    config = BenchmarkConfig(models=("efficientnet_lite0",), ways=(ONNXRUNTIME,))
    env = environment(config)
    assert (env["precision"], env["engine"], env["run_as"]) == ("fp32", "onnxruntime", ["onnxruntime"])
    assert "run as onnxruntime" in environment_line(env)
    assert config.runs() == [("efficientnet_lite0", "efficientnet_lite0", ONNXRUNTIME)]
    assert config.to_json()["ways"] == ["onnxruntime"]
    mixed = environment(BenchmarkConfig(models=("efficientnet_lite0",), ways=(FP32, BF16, FP32)))
    assert (mixed["precision"], mixed["engine"], mixed["run_as"]) == ("mixed", "mixed", ["fp32", "bf16"])


# -- partial results, pauses and why a model did not run --------------------------------------------------


def _after_first_batch_of(model: str, seen: list) -> bool:
    return any(p.model == model and p.done > 0 for p in seen)


def test_a_model_cut_short_by_cancel_is_partial_without_speed_figures_or_comparisons(tmp_path):
    from cnnviewer.core.benchmark import against_fp32

    seen: list = []
    config = BenchmarkConfig(models=("efficientnet_lite0", "efficientnet_lite1"), batch_size=4, limit=12,
                             latency_samples=3)
    report = run_benchmark(load_labelled_folder(VAL_100), config, progress=seen.append,
                           should_cancel=lambda: _after_first_batch_of("efficientnet_lite1", seen))
    lite0, lite1 = report.models
    assert lite0.complete and not lite0.partial and lite0.throughput_ips and len(lite0.latencies_ms) == 3
    assert report.cancelled and not report.complete
    assert lite1.partial and not lite1.complete and lite1.error is None
    assert (lite1.images, lite1.failed) == (4, 0)  # the first batch, and only that
    assert lite1.throughput_ips is None and lite1.end_to_end_ips is None and lite1.latency_ms is None
    assert lite1.latencies_ms == []
    assert sum(1 for row in report.images if "efficientnet_lite1" in row.top5) == 4
    assert report.comparisons == [] and against_fp32(report) == []  # never lite0's 12 images against lite1's 4
    assert "efficientnet_lite1" not in report.per_class
    text = markdown(report)
    assert "partial: 4 of 12 images, no speed figures" in text and "faster than" not in text
    again = load_json(write_all(report, tmp_path)["json"])
    assert again.result("efficientnet_lite1").partial and again.result("efficientnet_lite1").latency_ms is None
    assert again.result("efficientnet_lite0").latency_ms == lite0.latency_ms


def test_a_way_of_running_cut_short_is_not_set_against_fp32():
    from cnnviewer.core.benchmark import against_fp32

    way = parse_way(second_way())
    seen: list = []
    config = BenchmarkConfig(models=("efficientnet_lite0",), batch_size=4, limit=8, latency_samples=2,
                             ways=(FP32, way))
    report = run_benchmark(load_labelled_folder(VAL_100), config, progress=seen.append,
                           should_cancel=lambda: _after_first_batch_of(f"efficientnet_lite0 ({way.label})", seen))
    assert report.models[1].partial and report.models[1].images == 4
    assert against_fp32(report) == [] and report.comparisons == []


def test_time_spent_paused_is_left_out_of_the_models_figures(monkeypatch):
    """A pause between batches that lasts 1000 s on the benchmark's clock (the clock jumps; nothing sleeps,
    so a loaded machine cannot blur it): the pause is recorded, and neither the model's seconds nor its
    end-to-end rate contain it (if they did, both would be at least 1000 s)."""
    import time

    from cnnviewer.core import benchmark

    class JumpingClock:
        """``time`` as the benchmark sees it, with ``perf_counter`` moved on by each simulated wait."""

        def __init__(self) -> None:
            self.jumped = 0.0

        def perf_counter(self) -> float:
            return time.perf_counter() + self.jumped

        def __getattr__(self, name: str):
            return getattr(time, name)

    clock = JumpingClock()
    monkeypatch.setattr(benchmark, "time", clock)
    wait = 1000.0
    calls: list[float] = []
    seen: list = []

    def pause() -> float:
        waited = 0.0
        if seen and seen[-1].done == 4:  # one long wait, between the two batches: inside the timed loop
            clock.jumped += wait
            waited = wait
        calls.append(waited)
        return waited

    dataset = load_labelled_folder(VAL_100)
    config = BenchmarkConfig(models=("efficientnet_lite0",), batch_size=4, limit=8, latency_samples=3)
    started = clock.perf_counter()
    paused = run_benchmark(dataset, config, pause=pause, progress=seen.append).models[0]
    wall = clock.perf_counter() - started
    assert paused.complete and paused.images == 8
    assert len(calls) >= 1 + 3  # between the batches, before each latency sample
    assert paused.paused_s == pytest.approx(sum(calls)) == wait
    assert paused.seconds + paused.paused_s <= wall
    assert paused.seconds < wait / 2
    assert paused.images / paused.end_to_end_ips < wait / 2


def test_why_a_model_did_not_run_is_a_kind_told_by_the_error_not_its_text(tmp_path):
    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.models import bf16_supported

    corrupt = get_entry("resnet18").cached_weights_path()
    corrupt.parent.mkdir(parents=True, exist_ok=True)
    corrupt.write_bytes(b"these are no weights " * 1000)  # present, so not "missing": unusable
    dataset = load_labelled_folder(PHOTOS_13)
    report = run_benchmark(dataset, BenchmarkConfig(models=("resnet18", "resnet50", "resnet5000"), limit=2))
    kinds = {m.name: m.error_kind for m in report.models}
    assert kinds == {"resnet18": "weights_file", "resnet50": "weights_missing", "resnet5000": "unknown_model"}
    assert all(m.error and m.throughput_ips is None for m in report.models)
    text = markdown(report)
    assert "- resnet18: weights file unusable: " in text and "- resnet50: weights missing: " in text
    way, device = (BF16, "cpu") if not bf16_supported() else (FP32, "cuda")
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine runs every way asked of it")
    [result] = run_benchmark(dataset, BenchmarkConfig(models=("efficientnet_lite0",), limit=2, device=device,
                                                      ways=(way,))).models
    assert result.error_kind == "cannot_run" and result.error


def test_a_stop_while_a_batch_is_handed_on_leaves_that_batch_out_of_the_report():
    """A second Ctrl+C lands anywhere, also while results.csv is being written: the batch that was not
    taken in full is left out, so the report holds exactly the batches ``on_rows`` accepted."""
    from cnnviewer.core.benchmark import BenchmarkRun

    accepted: list[tuple[str, int]] = []

    def on_rows(model: str, rows: list) -> None:
        if model == "efficientnet_lite1" and accepted and accepted[-1][0] == model:
            raise KeyboardInterrupt  # the second batch of the second model, half written
        accepted.append((model, len(rows)))

    config = BenchmarkConfig(models=("efficientnet_lite0", "efficientnet_lite1"), batch_size=4, limit=12,
                             latency_samples=1)
    run = BenchmarkRun(load_labelled_folder(VAL_100), config, on_rows=on_rows)
    with pytest.raises(KeyboardInterrupt):
        run.run_all()
    report = run.cut_short()
    lite1 = report.result("efficientnet_lite1")
    assert report.cancelled and lite1.partial and lite1.images == 4 == sum(n for m, n in accepted if m == lite1.name)
    assert sum(1 for row in report.images if lite1.name in row.top5) == 4
    right = sum(1 for row in report.images if lite1.name in row.top5 and row.top5[lite1.name][0] == row.truth)
    assert lite1.top1 == right / 4
