"""Speed claims with error bars: interleaved timing rounds, intervals of the ratio, and the load while timing."""

from __future__ import annotations

import json
import math

import pytest

from cnnviewer.core.benchmark import (
    BenchmarkConfig,
    BenchmarkReport,
    ImageRow,
    ModelResult,
    load_warning,
    run_benchmark,
    speed_comparison,
)
from cnnviewer.core.datasets import load_labelled_folder
from cnnviewer.core.report import conclusions, html, load_json, markdown, save_json
from cnnviewer.core.stats import excludes_one, log_t_interval, ratio_interval, t_quantile_95
from tests.helpers import VAL_100

LITE0, LITE1 = "efficientnet_lite0", "efficientnet_lite1"


# -- the statistics, with numbers ------------------------------------------------------------------


def test_t_quantiles_are_students():
    assert t_quantile_95(2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile_95(30) == pytest.approx(2.0423, abs=1e-4)
    assert t_quantile_95(60) == pytest.approx(2.0003, abs=1e-3)  # beyond the table
    assert t_quantile_95(10_000) == pytest.approx(1.9602, abs=1e-3)


def test_the_log_interval_of_three_rounds_by_hand():
    mean, low, high = log_t_interval([100.0, 110.0, 90.0])
    logs = [math.log(v) for v in (100.0, 110.0, 90.0)]
    centre = sum(logs) / 3
    sd = math.sqrt(sum((x - centre) ** 2 for x in logs) / 2)
    assert mean == pytest.approx(math.exp(centre))
    assert low == pytest.approx(math.exp(centre - 4.3027 * sd / math.sqrt(3)), rel=1e-4)
    assert high == pytest.approx(math.exp(centre + 4.3027 * sd / math.sqrt(3)), rel=1e-4)
    assert low < mean < high
    assert log_t_interval([100.0]) is None and log_t_interval([100.0, 0.0]) is None


def test_a_ratio_interval_that_excludes_one_is_a_claim_and_one_that_includes_it_is_not():
    ratio, low, high = ratio_interval([200.0, 180.0, 210.0], [100.0, 92.0, 103.0])  # ~2x in every round
    assert ratio == pytest.approx(2.0, abs=0.05) and 1 < low < ratio < high and excludes_one(low, high)
    ratio, low, high = ratio_interval([120.0, 80.0, 105.0], [100.0, 100.0, 100.0])  # one round each way
    assert low < 1 < high and not excludes_one(low, high)
    _, low, high = ratio_interval([50.0, 52.0, 49.0], [100.0, 101.0, 99.0])  # clearly slower: still a claim
    assert high < 1 and excludes_one(low, high)


def test_ratios_are_paired_round_by_round():
    """A load burst in round 2 halves both: paired, the ratio stays tight; pooled it would not."""
    a, b = [200.0, 100.0, 198.0], [100.0, 50.0, 99.0]
    _, low, high = ratio_interval(a, b)
    assert high - low < 0.01
    assert ratio_interval(a, b[:2]) is None  # rounds that do not pair up give no interval


# -- the claim in report.md, from constructed results ----------------------------------------------


def _result(name: str, rounds: list[float]) -> ModelResult:
    interval = log_t_interval(rounds)
    return ModelResult(name=name, title=name.upper(), weights="published", model=name, images=1, top1=1.0, top5=1.0,
                       complete=True, throughput_rounds=rounds, throughput_ips=interval[0] if interval else rounds[0],
                       throughput_ci=interval[1:] if interval else None,
                       latency_ms={"p50": 1.0, "p90": 1.0, "p99": 1.0})


def _report(a: list[float], b: list[float], load: float | None = None) -> BenchmarkReport:
    from cnnviewer.core.benchmark import _finish_statistics

    env = {"cpu": "test cpu", "device": "cpu", "batch_size": 4}
    if load is not None:
        env["load_while_timing"] = {"rounds": [{"round": 1, "others_cpu_pct": load, "others_cpu_max_pct": load,
                                                "loadavg": [1.0, 1.0, 1.0]}],
                                    "others_cpu_max_pct": load, "others_cpu_mean_pct": load}
    report = BenchmarkReport(root="set", config={}, environment=env,
                             models=[_result("fast", a), _result("slow", b)],
                             images=[ImageRow("x.jpg", "tench", 0, {"fast": [0], "slow": [0]},
                                              {"fast": [1.0], "slow": [1.0]})])
    report.timing = {"rounds": len(a), "done": len(a), "images": 8, "order": [], "load_s": 1.5,
                     "cut_short": False}
    _finish_statistics(report)
    return report


def test_report_md_claims_a_speed_difference_only_when_the_interval_excludes_one():
    clear = markdown(_report([200.0, 180.0, 210.0], [100.0, 92.0, 103.0]))
    assert "FAST is faster than SLOW (x2.00, 95 % interval 1.9" in clear
    assert "No clear speed difference" not in clear
    assert "in 3 interleaved rounds" in clear and "loaded again for each round (1.5 s of loading)" in clear
    # The interval of the mean beside the figure: "197.0 (..–..)".
    assert "| 196.3 (" in clear
    unclear = markdown(_report([120.0, 80.0, 105.0], [100.0, 100.0, 100.0]))
    assert "is faster than" not in unclear and "faster" not in unclear.split("## Conclusions")[1].split("##")[0]
    assert "No clear speed difference between FAST and SLOW (x1.00, 95 % interval 0.60–1.68)" in unclear


def test_the_slower_one_first_still_names_the_faster():
    report = _report([50.0, 52.0, 49.0], [100.0, 101.0, 99.0])
    assert any(s.startswith("SLOW is faster than FAST (x1.99, 95 % interval") for s in conclusions(report))


def test_two_rounds_are_too_few_for_a_claim_however_tight():
    report = _report([200.0, 200.5], [100.0, 100.2])
    [pair] = report.comparisons
    assert pair["speed_interval"] is not None and pair["speed_rounds"] == 2 and pair["faster"] is None
    text = " ".join(conclusions(report))
    assert "is faster than" not in text and "no speed claim" in text


# -- the load while timing -------------------------------------------------------------------------


@pytest.mark.parametrize("share, flagged", [(23.4, True), (10.0, False), (4.0, False)])
def test_the_load_flag_appears_only_above_ten_percent(share, flagged):
    report = _report([200.0, 180.0, 210.0], [100.0, 92.0, 103.0], load=share)
    sentence = "Other programs used 23 % of the CPU while timing: speed figures may be off."
    assert (load_warning(report.environment) is not None) is flagged
    assert (sentence in markdown(report)) is flagged
    assert (sentence in html(report)) is flagged
    assert "Other programs used" not in markdown(_report([2.0, 2.0, 2.0], [1.0, 1.0, 1.0]))  # none recorded


# -- reports written before timing rounds ------------------------------------------------------------


def test_an_old_report_without_rounds_loads_and_shows_without_intervals(tmp_path):
    old = _report([200.0], [100.0]).to_json()
    for model in old["models"]:
        del model["throughput_rounds"], model["throughput_ci"]
    for pair in old["comparisons"]:
        for key in ("speed_interval", "speed_rounds", "faster"):
            del pair[key]
    del old["timing"]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    report = load_json(path)
    fast = report.result("fast")
    assert fast.throughput_rounds == [] and fast.throughput_ci is None and fast.throughput_ips == 200.0
    assert report.timing == {}
    text = markdown(report)
    assert "| 200.0 |" in text  # the figure, without an interval
    assert "is faster than" not in text
    assert "FAST against SLOW (no speed claim: FAST ran at x2.00 the throughput of SLOW in one pass" in text
    assert "interleaved rounds" not in text


def test_a_bad_speed_interval_in_report_json_is_refused(tmp_path):
    from cnnviewer.core.report import ReportError

    data = _report([200.0, 180.0, 210.0], [100.0, 92.0, 103.0]).to_json()
    data["comparisons"][0]["speed_interval"] = [3.0, 1.0]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ReportError, match=r"comparisons\[0\].speed_interval: the interval's low end 3 is above"):
        load_json(path)


# -- real runs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rounds_run():
    seen: list = []
    config = BenchmarkConfig(models=(LITE0, LITE1), batch_size=4, limit=8, latency_samples=2, timing_rounds=3,
                             timing_batches=1)
    report = run_benchmark(load_labelled_folder(VAL_100), config, progress=seen.append)
    return report, seen


def test_rounds_are_interleaved_every_model_in_a_round_before_the_next(rounds_run):
    report, seen = rounds_run
    assert report.timing["order"] == [[1, LITE0], [1, LITE1], [2, LITE0], [2, LITE1], [3, LITE0], [3, LITE1]]
    assert report.timing["done"] == 3 and not report.timing["cut_short"] and report.timing["images"] == 4
    assert report.timing["held"]  # two small models: loaded once for the rounds, not once per round
    texts = [p.text for p in seen if p.text.startswith("timing")]
    assert texts == [f"timing, round {r} of 3 {m}" for r in (1, 2, 3) for m in (LITE0, LITE1)]


def test_each_round_is_stored_and_the_interval_holds_the_mean(rounds_run, tmp_path):
    report, _ = rounds_run
    for name in (LITE0, LITE1):
        m = report.result(name)
        assert len(m.throughput_rounds) == 3 and all(v > 0 for v in m.throughput_rounds)
        assert m.throughput_ci[0] <= m.throughput_ips <= m.throughput_ci[1]
        assert min(m.throughput_rounds) <= m.throughput_ips <= max(m.throughput_rounds)
    [pair] = report.comparisons
    assert pair["speed_rounds"] == 3 and pair["speed_interval"][0] <= pair["speed_ratio"] <= pair["speed_interval"][1]
    assert pair == {**pair, **speed_comparison(report.result(LITE0), report.result(LITE1))}
    load = report.environment["load_while_timing"]
    assert [r["round"] for r in load["rounds"]] == [1, 2, 3]
    assert all(0 <= r["others_cpu_pct"] <= 100 for r in load["rounds"])
    assert load["others_cpu_max_pct"] == max(r["others_cpu_max_pct"] for r in load["rounds"])
    assert report.timing["load_s"] > 0
    save_json(report, tmp_path / "report.json")
    again = load_json(tmp_path / "report.json")
    assert again.result(LITE0).throughput_rounds == report.result(LITE0).throughput_rounds
    assert again.result(LITE0).throughput_ci == pytest.approx(report.result(LITE0).throughput_ci)
    assert again.timing["order"] == report.timing["order"]


def test_cancel_during_round_two_keeps_the_accuracy_and_makes_no_claim():
    """With no memory to hold them, each model is loaded for its step of a round, still interleaved."""
    seen: list = []
    config = BenchmarkConfig(models=(LITE0, LITE1), batch_size=4, limit=8, latency_samples=2, timing_rounds=3,
                             timing_batches=1, timing_hold_mb=0)
    report = run_benchmark(load_labelled_folder(VAL_100), config, progress=seen.append,
                           should_cancel=lambda: any(p.text.startswith("timing, round 2") for p in seen))
    assert report.cancelled and not report.complete
    for name in (LITE0, LITE1):
        m = report.result(name)
        assert m.images == 8 and m.complete and not m.partial and m.top1 > 0  # the accuracy pass is whole
        assert len(m.throughput_rounds) == 1 and m.throughput_ci is None
    assert report.timing["done"] == 1 and report.timing["cut_short"] and not report.timing["held"]
    assert report.timing["order"] == [[1, LITE0], [1, LITE1], [2, LITE0]]
    [pair] = report.comparisons
    assert pair["faster"] is None and pair["speed_interval"] is None
    text = markdown(report)
    assert "The timing was cut short after 1 of 3 round(s)" in text and "is faster than" not in text


def test_the_throughput_chart_draws_each_interval_as_an_error_bar():
    from matplotlib.container import ErrorbarContainer

    from cnnviewer.core import charts
    from cnnviewer.core.palette import model_colours

    report = _report([200.0, 180.0, 210.0], [100.0, 92.0, 103.0])
    figure = charts._throughput(report, model_colours([m.name for m in report.models]))
    [bars] = [c for c in figure.axes[0].containers if isinstance(c, ErrorbarContainer)]
    spans = [tuple(sorted((start[1], end[1]))) for start, end in bars.lines[2][0].get_segments()]
    assert spans == [pytest.approx(m.throughput_ci) for m in report.models]
    assert set(charts.render(report)) >= {"throughput.png", "throughput.svg"}
    old = _report([200.0], [100.0])  # no rounds: bars alone
    figure = charts._throughput(old, model_colours([m.name for m in old.models]))
    assert not [c for c in figure.axes[0].containers if isinstance(c, ErrorbarContainer)]
