"""Reading report.json from anywhere: parsing in short steps, every field checked, sizes bounded."""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviewer.core import report_check
from cnnviewer.core.benchmark import BenchmarkReport, ImageRow, ModelResult
from cnnviewer.core.report import ReportError, load_json, save_json
from cnnviewer.core.report_check import (
    MAX_DEPTH,
    MAX_LATENCIES,
    MAX_REPORT_BYTES,
    MAX_RESULTS,
    ReportFormatError,
    StepParser,
    parse_json,
    read_report_text,
)
from tests.helpers import replaced

# -- a valid report, made here, that each test spoils in its own way -----------------------------


def valid_report() -> dict[str, Any]:
    """A small report with every field cnnviewer writes filled in (two results, three images)."""
    models = [ModelResult(name=name, title=f"Model {name}", weights=f"{name}-1234.pth", model=name, run_as="fp32",
                          images=3, failed=1, top1=2 / 3, top5=1.0, top1_ci=(0.21, 0.94), top5_ci=(0.44, 1.0),
                          throughput_ips=50.5, end_to_end_ips=20.25, latency_ms={"p50": 10.5, "p90": 12.0, "p99": 13.0},
                          latencies_ms=[10.5, 11.25, 13.0], decode_ms_mean=3.5, peak_rss_mb=140.5, param_mb=18.5,
                          rss_before_mb=700.25, folded_batchnorms=2, load_s=0.25, seconds=1.5, paused_s=0.5,
                          published={"acc1": 75.1, "acc5": None, "gmacs": 0.41, "params": 4652008},
                          error=None, complete=True) for name in ("a", "b")]
    images = [ImageRow(f"/photos/bear-{i}.jpg", "ice bear", 296, {"a": [296, 294, 295, 270, 279], "b": [294, 296, 295, 1, 2]},
                       {"a": [0.9, 0.05, 0.02, 0.01, 0.005], "b": [0.5, 0.4, 0.05, 0.01, 0.01]}) for i in range(3)]
    report = BenchmarkReport(
        root="/photos", config={"models": ["a", "b"], "batch_size": 4},
        environment={"cpu": "a CPU", "physical_cores": 2, "torch": "2.5", "device": "cpu", "gpu": None,
                     "precision": "fp32", "engine": "torch", "run_as": ["fp32"], "batch_size": 4},
        models=models, images=images, skipped=[{"file": "/photos/broken.jpg", "reason": "truncated"}],
        label_problems=["crane: names two classes"],
        comparisons=[{"a": "a", "b": "b", "images": 3, "only_a_right": 2, "only_b_right": 0, "p_value": 0.5,
                      "significant": False, "more_accurate": None, "speed_ratio": 1.5}],
        per_class={"a": {"296": [3, 3]}, "b": {"296": [0, 3]}}, confusions={"a": [], "b": [[296, 294, 3]]},
        complete=True)
    return json.loads(json.dumps(report.to_json()))


def write(tmp_path: Path, data: Any, name: str = "report.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def refused(path: Path) -> str:
    """The sentence load_json gives for ``path`` (which must be refused)."""
    with pytest.raises(ReportError) as caught:
        load_json(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


# Field paths as the checks write them: by name inside these objects (top5['a']), with a dot elsewhere.
BY_NAME = ("top5", "probabilities", "per_class", "confusions")


def shown(keys: tuple[Any, ...]) -> str:
    text = ""
    for number, key in enumerate(keys):
        if isinstance(key, int):
            text += f"[{key}]"
        elif number and (keys[number - 1] in BY_NAME or (number > 1 and keys[number - 2] == "per_class")):
            text += f"[{key!r}]"
        else:
            text += f".{key}" if text else key
    return text


def leaves(value: Any, keys: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every scalar in a report with the keys that lead to it (config is free-form: left out)."""
    if keys == ("config",):
        return []
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in leaves(item, (*keys, key))]
    if isinstance(value, list):
        return [leaf for number, item in enumerate(value) for leaf in leaves(item, (*keys, number))]
    return [(keys, value)]


# -- the fields ----------------------------------------------------------------------------------


def test_a_valid_report_round_trips(tmp_path):
    data = valid_report()
    loaded = load_json(write(tmp_path, data))
    again = json.loads(json.dumps(loaded.to_json()))
    assert again == data
    assert loaded.models[0].top1_ci == (0.21, 0.94) and isinstance(loaded.models[0].top1_ci, tuple)


def test_every_field_of_the_wrong_type_is_named(tmp_path):
    """Each scalar of the report, swapped for a value of the wrong kind, is refused in one sentence
    that names that field (a list of objects fits no scalar; text, numbers and flags trade places)."""
    data = valid_report()
    checked = 0
    problems = []
    for keys, good in leaves(data):
        wrong: list[Any] = [[{}]]
        if keys[0] != "environment":  # what report.md's environment line prints may be text or a number
            if isinstance(good, bool):
                wrong.append("true")
            elif isinstance(good, (int, float)):
                wrong.append(str(good))
            elif isinstance(good, str):
                wrong.append(3)
        for bad in wrong:
            path = write(tmp_path, replaced(data, keys, bad))
            try:
                message = refused(path)
            except (AssertionError, pytest.fail.Exception) as exc:  # collect every miss, not just the first
                problems.append(f"{shown(keys)} = {bad!r}: {exc!r}")
                continue
            if f"({shown(keys)}: " not in message:
                problems.append(f"{shown(keys)} = {bad!r}: {message}")
            checked += 1
    assert not problems, "\n".join(problems)
    assert checked > 150


def test_the_faults_of_the_issue_are_one_sentence_each(tmp_path):
    data = valid_report()
    cases = {
        ("models", 0, "name"): (3, "models[0].name: expected text, found 3"),
        ("models", 0, "top1"): ("0.9", "models[0].top1: expected a number, found '0.9'"),
        ("models", 0, "top1_ci"): ([0.1], "models[0].top1_ci: 1 entries, fewer than the 2 it needs"),
        ("models", 1, "top5_ci"): ([0.9, 0.1], "models[1].top5_ci: the interval's low end 0.9 is above its high end"),
        ("models", 0, "top5"): (1.5, "models[0].top5: expected a finite number from 0 to 1, found 1.5"),
        ("models", 0, "latencies_ms"): ([1.0, "fast"], "models[0].latencies_ms[1]: expected a number, found 'fast'"),
        ("models", 0, "latency_ms"): ({"p50": 1.0}, "models[0].latency_ms.p90: missing"),
        ("models", 0, "images"): (-1, "models[0].images: expected a whole number of at least 0, found -1"),
        ("images", 2, "truth"): (1000, "images[2].truth: expected an ImageNet class index from 0 to 999, found 1000"),
        ("images", 0, "top5"): ({"c": [1]}, "images[0].top5['c']: not one of the report's models"),
        ("images", 1, "probabilities"): ({"a": [0.5], "b": [0.5]},
                                         "images[1].probabilities['a']: 1 entries, fewer than the 5 it needs"),
        ("comparisons", 0, "a"): ("z", "comparisons[0].a: 'z' is not one of the report's models"),
        ("comparisons", 0, "more_accurate"): ("z", "comparisons[0].more_accurate: expected null or one of the pair"),
        ("per_class", "a"): ({"296": [4, 3]}, "per_class['a']['296']: 4 right of only 3"),
        ("models", 1, "name"): ("a", "models[1].name: 'a' is used by an earlier result"),
        ("models", 0, "weights_sha256"): (7, "models[0].weights_sha256: expected text, found 7"),
        ("root",): ("x" * 5000, "root: 5000 characters, more than the 4096 it may have"),
    }
    for keys, (bad, expected) in cases.items():
        message = refused(write(tmp_path, replaced(data, keys, bad)))
        assert f"not a cnnviewer report.json ({expected}" in message, message
    missing = valid_report()
    del missing["models"][0]["name"]
    assert "(models[0].name: missing)" in refused(write(tmp_path, missing))
    assert "(the report: expected an object, found a list of 0)" in refused(write(tmp_path, []))
    nan = replaced(data, ("models", 0, "throughput_ips"), math.nan)  # json.dumps writes NaN; json.loads reads it
    assert "(models[0].throughput_ips: expected a finite number of at least 0, found nan)" in refused(write(tmp_path, nan))


def test_from_json_names_the_field_without_a_file():
    with pytest.raises(ReportFormatError, match=r"^models\[0\]\.name: expected text, found 3$"):
        BenchmarkReport.from_json(replaced(valid_report(), ("models", 0, "name"), 3))
    assert isinstance(BenchmarkReport.from_json({"root": "x", "config": {}, "environment": {}}), BenchmarkReport)


def test_a_partial_result_has_null_speed_figures_and_a_result_not_run_a_kind(tmp_path):
    data = valid_report()
    partial = {**data["models"][1], "partial": True, "complete": False, "throughput_ips": None,
               "end_to_end_ips": None, "latency_ms": None, "latencies_ms": []}
    data = replaced(data, ("models", 1), partial)
    data["models"].append({**data["models"][0], "name": "c", "error": "weights missing", "error_kind": "weights_missing",
                           "images": 0, "throughput_ips": None, "latency_ms": None, "rss_before_mb": None})
    loaded = load_json(write(tmp_path, data))
    assert loaded.models[1].partial and loaded.models[1].latency_ms is None and not loaded.models[1].timed
    assert loaded.models[0].timed and loaded.models[2].error_kind == "weights_missing"
    assert json.loads(json.dumps(loaded.to_json())) == data
    for keys, bad, expected in [
        (("models", 1, "partial"), "yes", "models[1].partial: expected true or false, found 'yes'"),
        (("models", 1, "throughput_ips"), -1, "models[1].throughput_ips: expected a finite number of at least 0"),
        (("models", 1, "latency_ms"), 5, "models[1].latency_ms: expected an object, found 5"),
        (("models", 2, "error_kind"), 3, "models[2].error_kind: expected text, found 3"),
        (("models", 0, "paused_s"), "long", "models[0].paused_s: expected a number, found 'long'"),
        (("models", 0, "rss_before_mb"), [1], "models[0].rss_before_mb: expected a number, found a list of 1"),
    ]:
        assert f"({expected}" in refused(write(tmp_path, replaced(data, keys, bad)))


def test_reports_of_other_versions_open(tmp_path):
    """Older reports lack newer fields (they take their defaults); newer ones have fields this version
    does not know (they are ignored)."""
    old = valid_report()
    for model in old["models"]:
        for key in ("model", "run_as", "weights_sha256", "end_to_end_ips", "peak_gpu_mb", "folded_batchnorms",
                    "partial", "paused_s", "rss_before_mb", "error_kind"):
            model.pop(key, None)
    report = load_json(write(tmp_path, old))
    assert [(m.model, m.run_as, m.weights_sha256) for m in report.models] == [("a", "fp32", ""), ("b", "fp32", "")]
    assert not any(m.partial for m in report.models) and all(m.timed for m in report.models)
    from cnnviewer.core.benchmark import OLD_MEMORY_CAPTION, memory_caption

    assert memory_caption(report.models) == OLD_MEMORY_CAPTION  # its peak is the whole process's, and says so
    newer = valid_report()
    newer["models"][0]["energy_joules"] = {"per_image": 1.5}
    newer["models"][0]["weights_sha256"] = "ab" * 32
    newer["provenance"] = ["signed"]
    report = load_json(write(tmp_path, newer))
    assert not hasattr(report.models[0], "energy_joules") and report.models[0].weights_sha256 == "ab" * 32


# -- sizes and kinds of file ---------------------------------------------------------------------


def test_lists_are_bounded_by_what_a_report_can_hold(tmp_path):
    data = valid_report()
    many = replaced(data, ("models", 0, "latencies_ms"), [1.0] * (MAX_LATENCIES + 1))
    assert (f"(models[0].latencies_ms: {MAX_LATENCIES + 1} entries, more than the {MAX_LATENCIES} it may have)"
            in refused(write(tmp_path, many)))
    pairs = replaced(data, ("comparisons",), data["comparisons"] * 2)  # two results make one pair
    assert "(comparisons: 2 entries, more than the 1 it may have)" in refused(write(tmp_path, pairs))
    crowd = replaced(data, ("models",), [{"name": f"m{i}", "title": "t", "weights": "w"} for i in range(MAX_RESULTS + 1)])
    assert f"(models: {MAX_RESULTS + 1} entries, more than the {MAX_RESULTS} it may have)" in refused(
        write(tmp_path, crowd))


def test_files_that_are_no_report_are_refused_before_they_are_read(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(MAX_REPORT_BYTES + 1)  # sparse: refused from its size, nothing read
    assert "a report.json may be at most 256 MB" in refused(big)
    assert refused(tmp_path).endswith(": is a folder, not a report.json")
    (tmp_path / "latin1.json").write_bytes(b'{"root": "caf\xe9"}')
    assert "is not UTF-8 text (byte 13)" in refused(tmp_path / "latin1.json")
    small = write(tmp_path, valid_report())
    with pytest.raises(ReportFormatError, match="may be at most 0 MB"):
        read_report_text(small, limit=100)
    assert "cannot be read (No such file or directory)" in refused(tmp_path / "absent.json")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    outcome: list[str] = []
    reader = threading.Thread(target=lambda: outcome.append(refused(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert outcome and outcome[0].endswith("is not a regular file (a device, pipe or socket)")


def test_deep_nesting_is_a_sentence_not_a_recursion_error(tmp_path):
    bottom = "[" + "1," * 40_000 + "1]"  # longer than a step, so every level around it is walked
    deep = "[" * MAX_DEPTH + bottom + "]" * MAX_DEPTH
    for text in ("[" * 100_000, '{"a":' * 50_000, deep):
        (tmp_path / "deep.json").write_text(text, encoding="utf-8")
        message = refused(tmp_path / "deep.json")
        assert f"(not valid JSON: nested more than {MAX_DEPTH} levels deep" in message, message
    ok = "[" * (MAX_DEPTH - 1) + bottom + "]" * (MAX_DEPTH - 1)  # MAX_DEPTH lists, the bottom one included
    (tmp_path / "deep.json").write_text(ok, encoding="utf-8")
    assert "(the report: expected an object, found a list of 1)" in refused(tmp_path / "deep.json")


# -- parsing in steps ----------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=8), inner,
                                                                                             max_size=8),
                         max_leaves=60)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents, step=st.integers(64, 400), indent=st.sampled_from([None, 0, 1, 2]))
def test_steps_parse_what_json_loads_parses(document, step, indent):
    text = json.dumps(document, indent=indent)
    if depth(document) > MAX_DEPTH:
        return
    assert parse_json(text, step) == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(document=documents, step=st.integers(64, 160), cut=st.integers(0, 10_000), insert=st.sampled_from(
    ["", ",", "]", "}", "[", "{", '"', ":", "x", " ", "1", "\\"]), drop=st.integers(0, 3))
def test_steps_refuse_what_json_loads_refuses(document, step, cut, insert, drop):
    text = json.dumps(document)
    cut %= len(text) + 1
    spoiled = text[:cut] + insert + text[cut + drop:]
    try:
        expected = json.loads(spoiled)
    except ValueError:
        with pytest.raises(json.JSONDecodeError):
            parse_json(spoiled, step)
        return
    if depth(expected) <= MAX_DEPTH:
        assert parse_json(spoiled, step) == expected


class Recording(StepParser):
    """The real parser, noting how much text each call into the C parser could see."""

    def __init__(self, text: str, step: int):
        super().__init__(text, step)
        self.sizes: list[int] = []

    def decode(self, text: str, pos: int = 0) -> tuple[Any, int]:
        self.sizes.append(len(text) - pos)
        return super().decode(text, pos)


def test_no_step_gives_the_c_parser_more_than_its_share():
    """What keeps other threads (the window's) running: each call into the C parser, which holds
    Python's global lock throughout, sees at most one step of the text."""
    rows = [{"file": f"/photos/{i:06d}.jpg", "label": "ice bear, polar bear", "truth": 296,
             "top5": {"a": [296, 294, 295, 270, 279]}, "probabilities": {"a": [0.9, 0.05, 0.02, 0.01, 0.005]}}
            for i in range(3000)]
    document = {"images": rows, "latencies": [i / 7 for i in range(60_000)], "deep": [[[list(range(3000))]]],
                "text": "x" * 50_000, "objects": {f"k{i}": {"v": [i, str(i)]} for i in range(5000)}}
    for indent in (None, 1):
        text = json.dumps(document, indent=indent)
        parser = Recording(text, 4096)
        assert parser.parse() == document
        assert max(parser.sizes) <= 4096 < len(text) // 100
        assert len(parser.sizes) < len(text) // 20  # small items are parsed many to a step, not one by one


def test_a_report_loads_in_steps_of_its_size(tmp_path):
    report = BenchmarkReport.from_json(valid_report())
    report.images = report.images * 2000
    save_json(report, tmp_path / "report.json")
    text = read_report_text(tmp_path / "report.json")
    parser = Recording(text, report_check.STEP_CHARS)
    assert parser.parse() == json.loads(text)
    assert max(parser.sizes) <= report_check.STEP_CHARS < len(text) // 10
