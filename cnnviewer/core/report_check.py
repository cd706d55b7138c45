"""Reading a report.json that may come from anywhere: bounded size, parsing in short steps, every field checked."""

from __future__ import annotations

import codecs
import json
import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field
from json.decoder import JSONDecodeError, scanstring  # type: ignore[attr-defined]  # not in typeshed
from typing import Any

from cnnviewer.core.errors import CnnviewerError

# Limits a person can check against their own runs. cnnviewer writes about 220 bytes per image and
# model, so the 50,000 ImageNet validation images with 20 models make a report of about 220 MB.
MAX_REPORT_BYTES = 256 * 2**20
MAX_RESULTS = 1000  # every catalog model in every way of running is about 250
MAX_LATENCIES = 1_000_000  # per result; cnnviewer measures 20
MAX_TOP = 5  # top5 lists hold the five most likely classes
MAX_NAME = 200  # characters of a model name, title or way of running
MAX_PATH = 4096  # characters of a file or folder name
MAX_TEXT = 10_000  # characters of any other text (an error, a reason, a label problem)
NUM_CLASSES = 1000
MAX_ROUNDS = 1000  # timing rounds per result; cnnviewer runs 3
MAX_DEPTH = 32  # nesting of lists and objects; a report needs 4

# The C parser holds Python's global lock for a whole call, so a large file parsed in one call stops
# every other thread, the window's too, for seconds. It is given at most STEP_CHARS characters at a
# time (a few milliseconds); the lists and objects around those steps are walked in Python.
STEP_CHARS = 64 * 1024
_FIRST_STEP = 256
_READ_BYTES = 1 << 20

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class ReportFormatError(CnnviewerError):
    """A report's content that cannot be used; the sentence names the first bad field ("models[0].name: ...")."""


# -- reading -------------------------------------------------------------------------------------


def read_report_text(path: str | os.PathLike[str], limit: int = MAX_REPORT_BYTES) -> str:
    """The file's text, read in pieces; raises OSError, or ReportFormatError for a folder, a device or
    pipe, a file over ``limit`` bytes or text that is not UTF-8 (the sentence says which)."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer that never comes.
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ReportFormatError("is a folder, not a report.json")
        if not stat.S_ISREG(info.st_mode):
            raise ReportFormatError("is not a regular file (a device, pipe or socket)")
        if info.st_size > limit:
            raise ReportFormatError(f"is {info.st_size / 2**20:.0f} MB; a report.json may be at most "
                                    f"{limit / 2**20:.0f} MB")
        decoder = codecs.getincrementaldecoder("utf-8")()
        parts, total = [], 0
        while True:
            block = os.read(fd, _READ_BYTES)
            total += len(block)
            if total > limit:  # it grew while being read
                raise ReportFormatError(f"is more than {limit / 2**20:.0f} MB, the most a report.json may be")
            try:
                parts.append(decoder.decode(block, final=not block))
            except UnicodeDecodeError as exc:
                raise ReportFormatError(f"is not UTF-8 text (byte {total - len(block) + exc.start})") from exc
            if not block:
                return "".join(parts)
    finally:
        os.close(fd)


# -- parsing in steps ----------------------------------------------------------------------------


def parse_json(text: str, step: int = STEP_CHARS) -> Any:
    """What json.loads(text) returns, parsed so that no single call into the C parser sees more than
    ``step`` characters: other threads run between the steps. Raises json.JSONDecodeError."""
    return StepParser(text, step).parse()


class StepParser:
    """json.loads in steps: a value that fits in a step is parsed by the C parser at once; a longer list
    or object is walked here, its members parsed a step at a time (many small ones per step)."""

    def __init__(self, text: str, step: int = STEP_CHARS):
        self.text = text
        self.step = max(step, 64)  # room for any number JSON writes for a float (24 characters at most)
        self.first = min(_FIRST_STEP, self.step)

    def decode(self, text: str, pos: int = 0) -> tuple[Any, int]:
        """One call into the C parser: the value at ``pos`` of ``text`` and where it ends."""
        result: tuple[Any, int] = _DECODER.raw_decode(text, pos)
        return result

    def parse(self) -> Any:
        pos = self._skip(0)
        value, pos = self._value(pos, 0, self.first)
        pos = self._skip(pos)
        if pos != len(self.text):
            raise JSONDecodeError("Extra data", self.text, pos)
        return value

    def _skip(self, pos: int) -> int:
        match = _WHITESPACE.match(self.text, pos)
        return match.end() if match else pos

    def _value(self, pos: int, depth: int, size: int) -> tuple[Any, int]:
        """The JSON value at ``pos`` and where it ends; ``size``: the first window to try (a guess)."""
        text = self.text
        size = max(self.first, min(size, self.step))
        problem: JSONDecodeError | None = None
        while True:
            whole = pos + size >= len(text)
            try:
                if whole:  # the rest of the text is one step
                    return self.decode(text, pos)
                window = text[pos:pos + size]
                value, end = self.decode(window)
                # A number cut by the window's edge may go on after it ("1000." of "1000.5", "1" of
                # "1e5"): the C parser looks at most three characters past a number's end.
                if end + 3 <= len(window):
                    return value, pos + end
                problem = None
            except JSONDecodeError as exc:
                problem = exc
            except RecursionError:
                problem = JSONDecodeError(f"nested more than {MAX_DEPTH} levels deep", text, pos)
            if whole or size >= self.step:
                break
            size = min(size * 16, self.step)
        # Longer than a step, or not valid JSON: walk it, which also finds exactly where it goes wrong.
        char = text[pos:pos + 1]
        if char in ("[", "{"):
            if depth >= MAX_DEPTH:
                raise JSONDecodeError(f"nested more than {MAX_DEPTH} levels deep", text, pos)
            return self._array(pos, depth + 1) if char == "[" else self._object(pos, depth + 1)
        if char == '"':
            string: tuple[str, int] = scanstring(text, pos + 1)  # in C, but as fast as copying the string
            return string
        if problem is None:
            raise JSONDecodeError(f"a number longer than {self.step} characters", text, pos)
        if whole:
            raise problem
        raise JSONDecodeError(problem.msg, text, pos + problem.pos)

    def _batch(self, pos: int, opening: str, closing: str) -> tuple[Any, int] | None:
        """The members from ``pos`` up to the last comma within one step, parsed in one call, and the
        position after that comma; None when that comma is not one of this container's own.

        opening + text[pos:comma] + closing parses completely only if the comma is at this container's
        own level: cut inside a string or a nested container, or after the container's end, it fails
        or ends early.
        """
        window = self.text[pos:pos + self.step - 1]
        cut = window.rfind(",")
        if cut <= 0:
            return None
        fragment = opening + window[:cut] + closing
        try:
            values, end = self.decode(fragment)
        except (JSONDecodeError, RecursionError):
            return None
        if not values or end != len(fragment):
            return None
        return values, self._skip(pos + cut + 1)

    def _array(self, pos: int, depth: int) -> tuple[list[Any], int]:
        text = self.text
        items: list[Any] = []
        pos = self._skip(pos + 1)
        if text.startswith("]", pos):
            return items, pos + 1
        typical = 0  # characters per item lately: many small ones go in one step, larger ones one by one
        batch_from, backoff = pos, self.step
        while True:
            if pos >= batch_from and typical * 16 <= self.step:
                batch = self._batch(pos, "[", "]")
                if batch is not None:
                    values, end = batch
                    items.extend(values)
                    typical, pos, backoff = (end - pos) // len(values), end, self.step
                    continue
                # Items with commas inside (objects) rarely end at the step's last comma: try again
                # later, each time further on, so failed steps cost a small part of the parsing.
                batch_from, backoff = pos + backoff, backoff * 2
            start = pos
            value, pos = self._value(pos, depth, 2 * typical)
            items.append(value)
            typical = pos - start
            pos = self._skip(pos)
            if text.startswith("]", pos):
                return items, pos + 1
            if not text.startswith(",", pos):
                raise JSONDecodeError("Expecting ',' delimiter", text, pos)
            pos = self._skip(pos + 1)

    def _object(self, pos: int, depth: int) -> tuple[dict[str, Any], int]:
        text = self.text
        members: dict[str, Any] = {}  # a repeated key: the last one wins, as in json.loads
        pos = self._skip(pos + 1)
        if text.startswith("}", pos):
            return members, pos + 1
        typical = 0
        batch_from, backoff = pos, self.step
        while True:
            if pos >= batch_from and typical * 16 <= self.step:
                batch = self._batch(pos, "{", "}")
                if batch is not None:
                    values, end = batch
                    members.update(values)
                    typical, pos, backoff = (end - pos) // len(values), end, self.step
                    continue
                batch_from, backoff = pos + backoff, backoff * 2
            start = pos
            if not text.startswith('"', pos):
                raise JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
            key, pos = scanstring(text, pos + 1)
            pos = self._skip(pos)
            if not text.startswith(":", pos):
                raise JSONDecodeError("Expecting ':' delimiter", text, pos)
            members[key], pos = self._value(self._skip(pos + 1), depth, 2 * typical)
            typical = pos - start
            pos = self._skip(pos)
            if text.startswith("}", pos):
                return members, pos + 1
            if not text.startswith(",", pos):
                raise JSONDecodeError("Expecting ',' delimiter", text, pos)
            pos = self._skip(pos + 1)


# -- checking ------------------------------------------------------------------------------------


def _found(value: Any) -> str:
    """A value as a sentence shows it: short, quoted, escaped."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) or abs(value) < 10**40 else "a huge number"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _fail(path: str, expected: str, value: Any) -> ReportFormatError:
    return ReportFormatError(f"{path}: expected {expected}, found {_found(value)}")


def _text(value: Any, path: str, longest: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise _fail(path, "text", value)
    if len(value) > longest:
        raise ReportFormatError(f"{path}: {len(value)} characters, more than the {longest} it may have")
    return value


def _name(value: Any, path: str) -> str:
    return _text(value, path, MAX_NAME)


def _optional_text(value: Any, path: str) -> str | None:
    return None if value is None else _text(value, path)


def _number(value: Any, path: str, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, "a number", value)
    number = float(value) if abs(value) < 1e308 else math.inf  # an int too large for a float
    if not math.isfinite(number) or not low <= number <= high:
        limits = f"from {low:g} to {high:g}" if math.isfinite(high) else f"of at least {low:g}"
        raise _fail(path, f"a finite number {limits}", value)
    return number


def _fraction(value: Any, path: str) -> float:
    return _number(value, path, 0.0, 1.0)


def _optional_number(value: Any, path: str) -> float | None:
    return None if value is None else _number(value, path, -math.inf)


def _count(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(path, "a whole number of at least 0", value)
    return value


def _class_index(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < NUM_CLASSES:
        raise _fail(path, f"an ImageNet class index from 0 to {NUM_CLASSES - 1}", value)
    return value


def _flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, "true or false", value)
    return value


def _list(value: Any, path: str, longest: int | None = None, shortest: int = 0) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(path, "a list", value)
    if longest is not None and len(value) > longest:
        raise ReportFormatError(f"{path}: {len(value)} entries, more than the {longest} it may have")
    if len(value) < shortest:
        raise ReportFormatError(f"{path}: {len(value)} entries, fewer than the {shortest} it needs")
    return value


def _object_of(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "an object", value)
    return value


def _required(data: dict[str, Any], key: str, path: str) -> Any:
    if key not in data:
        raise ReportFormatError(f"{path}.{key}: missing" if path else f"{key}: missing")
    return data[key]


def _interval(value: Any, path: str, bound: Callable[[Any, str], float] | None = None) -> tuple[float, float]:
    """[low, high], low not above high: fractions (accuracy), or with ``bound=_number`` numbers of at least 0."""
    pair = _list(value, path, 2, 2)
    check = bound or _fraction
    low, high = check(pair[0], f"{path}[0]"), check(pair[1], f"{path}[1]")
    if low > high:
        raise ReportFormatError(f"{path}: the interval's low end {low:g} is above its high end {high:g}")
    return low, high


def _range(value: Any, path: str) -> tuple[float, float]:
    """A speed interval [low, high]: numbers of at least 0, low not above high."""
    return _interval(value, path, _number)


def _rounds(value: Any, path: str) -> list[float]:
    return [_number(v, f"{path}[{i}]") for i, v in enumerate(_list(value, path, MAX_ROUNDS))]


def _percentiles(value: Any, path: str) -> dict[str, Any]:
    data = dict(_object_of(value, path))
    for key in ("p50", "p90", "p99"):
        data[key] = _number(_required(data, key, path), f"{path}.{key}")
    return data


def _latencies(value: Any, path: str) -> list[float]:
    values = _list(value, path, MAX_LATENCIES)
    if all(type(v) is float and 0.0 <= v < math.inf for v in values):  # the common case, fast
        return values
    return [_number(v, f"{path}[{i}]") for i, v in enumerate(values)]


def _published(value: Any, path: str) -> dict[str, Any]:
    data = dict(_object_of(value, path))
    for key in ("acc1", "acc5"):
        if key in data:
            data[key] = None if data[key] is None else _number(data[key], f"{path}.{key}", 0.0, 100.0)
    for key in ("gmacs", "params"):  # formatted as numbers by report.md
        if key in data:
            data[key] = _number(data[key], f"{path}.{key}")
    return data


Check = Callable[[Any, str], Any]


def _or_null(check: Check) -> Check:
    """``check``, or null: a figure that was not measured (a partial result's speed, say)."""
    return lambda value, path: None if value is None else check(value, path)


_MODEL_CHECKS: dict[str, Check] = {
    "name": _name, "title": _name, "model": _name, "run_as": _name, "weights": _text,
    "images": _count, "failed": _count, "folded_batchnorms": _count,
    "top1": _fraction, "top5": _fraction, "top1_ci": _interval, "top5_ci": _interval,
    "throughput_ips": _or_null(_number), "end_to_end_ips": _or_null(_number), "decode_ms_mean": _number,
    "peak_rss_mb": _number, "rss_before_mb": _or_null(_number), "peak_gpu_mb": _number, "param_mb": _number,
    "load_s": _number, "seconds": _number, "paused_s": _number,
    "latency_ms": _or_null(_percentiles), "latencies_ms": _latencies, "published": _published,
    "error": _optional_text, "error_kind": _or_null(_name), "partial": _flag, "complete": _flag,
    "weights_sha256": _name, "throughput_rounds": _rounds, "throughput_ci": _or_null(_range),
}


def _check_by_default(default: Any) -> Check:
    """For a field added to ModelResult without its own entry above: the type of its default."""
    if isinstance(default, bool):
        return _flag
    if isinstance(default, int):
        return _count
    if isinstance(default, float):
        return _number
    if isinstance(default, str):
        return _text
    if isinstance(default, list):
        return _list
    if isinstance(default, dict):
        return _object_of
    return lambda value, path: value


def _check_model(value: Any, path: str, model_fields: Mapping[str, Field[Any]]) -> dict[str, Any]:
    data = _object_of(value, path)
    checked = {}
    for key, spec in model_fields.items():
        if key not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise ReportFormatError(f"{path}.{key}: missing")
            continue
        if key in _MODEL_CHECKS:
            check = _MODEL_CHECKS[key]
        else:
            factory = spec.default_factory
            default = spec.default if spec.default is not MISSING else factory() if callable(factory) else None
            check = _check_by_default(default)
        checked[key] = check(data[key], f"{path}.{key}")
    return checked  # fields this version does not know are left out


def _check_row(value: Any, path: str, names: set[str]) -> dict[str, Any]:
    data = _object_of(value, path)
    row = {"file": _text(_required(data, "file", path), f"{path}.file", MAX_PATH),
           "label": _text(_required(data, "label", path), f"{path}.label"),
           "truth": _class_index(_required(data, "truth", path), f"{path}.truth")}
    top5 = _object_of(data.get("top5", {}), f"{path}.top5")
    probabilities = _object_of(data.get("probabilities", {}), f"{path}.probabilities")
    # A report holds millions of these: the common case is tested first, the sentence built only for a fault.
    for model, indices in top5.items():
        values = probabilities.get(model)
        if (model in names and type(indices) is list and 0 < len(indices) <= MAX_TOP
                and all(type(i) is int and 0 <= i < NUM_CLASSES for i in indices)
                and type(values) is list and len(values) == len(indices)
                and all(type(p) is float and 0.0 <= p <= 1.0 for p in values)):
            continue
        where = f"{path}.top5[{model!r}]"
        if model not in names:
            raise ReportFormatError(f"{where}: not one of the report's models")
        for i, index in enumerate(_list(indices, where, MAX_TOP, 1)):
            _class_index(index, f"{where}[{i}]")
        where = f"{path}.probabilities[{model!r}]"
        values = _list(_required(probabilities, model, f"{path}.probabilities"), where, len(indices), len(indices))
        for i, p in enumerate(values):
            _fraction(p, f"{where}[{i}]")
    for model in probabilities:
        if model not in top5:
            raise ReportFormatError(f"{path}.probabilities[{model!r}]: no top5 for this model")
    row["top5"], row["probabilities"] = top5, probabilities
    return row


def _check_comparison(value: Any, path: str, names: set[str]) -> dict[str, Any]:
    data = dict(_object_of(value, path))
    for key in ("a", "b"):
        if _name(_required(data, key, path), f"{path}.{key}") not in names:
            raise ReportFormatError(f"{path}.{key}: {_found(data[key])} is not one of the report's models")
    for key in ("images", "only_a_right", "only_b_right"):
        _count(_required(data, key, path), f"{path}.{key}")
    data["p_value"] = _fraction(_required(data, "p_value", path), f"{path}.p_value")
    _flag(_required(data, "significant", path), f"{path}.significant")
    better = _required(data, "more_accurate", path)
    if better is not None and better not in (data["a"], data["b"]):
        raise _fail(f"{path}.more_accurate", "null or one of the pair", better)
    if data.get("speed_ratio") is not None:
        data["speed_ratio"] = _number(data["speed_ratio"], f"{path}.speed_ratio")
    if data.get("speed_interval") is not None:  # reports before timing rounds have none
        data["speed_interval"] = list(_range(data["speed_interval"], f"{path}.speed_interval"))
    if "speed_rounds" in data:
        _count(data["speed_rounds"], f"{path}.speed_rounds")
    faster = data.get("faster")
    if faster is not None and faster not in (data["a"], data["b"]):
        raise _fail(f"{path}.faster", "null or one of the pair", faster)
    return data


def _check_timing(value: Any, path: str) -> dict[str, Any]:
    """The timing rounds' record (empty in reports written before them)."""
    data = dict(_object_of(value, path))
    for key in ("rounds", "done", "images"):
        if key in data:
            _count(data[key], f"{path}.{key}")
    if "load_s" in data:
        _number(data["load_s"], f"{path}.load_s")
    if "cut_short" in data:
        _flag(data["cut_short"], f"{path}.cut_short")
    for i, step in enumerate(_list(data.get("order", []), f"{path}.order", MAX_ROUNDS * MAX_RESULTS)):
        number, key = _list(step, f"{path}.order[{i}]", 2, 2)
        _count(number, f"{path}.order[{i}][0]")
        _name(key, f"{path}.order[{i}][1]")  # only shown, never looked up: a result left out since is no fault
    return data


def _check_load(value: Any, path: str) -> None:
    """environment.load_while_timing: other programs' CPU share (%) per round, with its max and mean."""
    data = _object_of(value, path)
    for key in ("others_cpu_max_pct", "others_cpu_mean_pct"):
        if key in data:
            _number(data[key], f"{path}.{key}", 0.0, 100.0)
    for i, entry in enumerate(_list(data.get("rounds", []), f"{path}.rounds", MAX_ROUNDS)):
        entry = _object_of(entry, f"{path}.rounds[{i}]")
        for key in ("others_cpu_pct", "others_cpu_max_pct"):
            if key in entry:
                _number(entry[key], f"{path}.rounds[{i}].{key}", 0.0, 100.0)


def _check_per_class(value: Any, path: str) -> dict[str, Any]:
    for model, classes in _object_of(value, path).items():
        where = f"{path}[{model!r}]"
        for key, counts in _object_of(classes, where).items():
            if not key.isdigit() or int(key) >= NUM_CLASSES:
                raise _fail(f"{where}", f"class indices from 0 to {NUM_CLASSES - 1} as keys", key)
            pair = _list(counts, f"{where}[{key!r}]", 2, 2)
            right, total = _count(pair[0], f"{where}[{key!r}][0]"), _count(pair[1], f"{where}[{key!r}][1]")
            if right > total:
                raise ReportFormatError(f"{where}[{key!r}]: {right} right of only {total}")
    return value  # type: ignore[no-any-return]


def _check_confusions(value: Any, path: str) -> dict[str, Any]:
    for model, pairs in _object_of(value, path).items():
        where = f"{path}[{model!r}]"
        for i, triple in enumerate(_list(pairs, where)):
            truth, predicted, count = _list(triple, f"{where}[{i}]", 3, 3)
            _class_index(truth, f"{where}[{i}][0]")
            _class_index(predicted, f"{where}[{i}][1]")
            _count(count, f"{where}[{i}][2]")
    return value  # type: ignore[no-any-return]


def _check_environment(value: Any, path: str) -> dict[str, Any]:
    data = _object_of(value, path)
    for key in ("precision", "engine"):
        if key in data:
            _name(data[key], f"{path}.{key}")
    if data.get("gpu") is not None:
        _name(data["gpu"], f"{path}.gpu")
    if "run_as" in data:
        for i, way in enumerate(_list(data["run_as"], f"{path}.run_as", MAX_RESULTS)):
            _name(way, f"{path}.run_as[{i}]")
    for key in ("cpu", "physical_cores", "logical_cores", "torch_threads", "decode_threads", "torch", "torchvision",
                "device", "batch_size", "date"):  # written into report.md's environment line
        if isinstance(data.get(key), (list, dict)) or (isinstance(data.get(key), str) and len(data[key]) > MAX_NAME):
            raise _fail(f"{path}.{key}", f"a number or text of at most {MAX_NAME} characters", data[key])
    if "load_while_timing" in data:
        _check_load(data["load_while_timing"], f"{path}.load_while_timing")
    return data


def check_report(data: Any, model_fields: Mapping[str, Field[Any]]) -> dict[str, Any]:
    """Every field of a parsed report.json checked for type and range, before anything shows or uses it.

    ``model_fields``: ModelResult's dataclass fields (fields without a default are required; a field
    not checked here is checked against its default's type). Returns the report's known fields with
    the models' fields only; raises ReportFormatError naming the first bad field.
    """
    report = _object_of(data, "the report")
    checked: dict[str, Any] = {
        "root": _text(_required(report, "root", ""), "root", MAX_PATH),
        "config": _object_of(_required(report, "config", ""), "config"),
        "environment": _check_environment(_required(report, "environment", ""), "environment"),
    }
    models = [_check_model(m, f"models[{i}]", model_fields)
              for i, m in enumerate(_list(report.get("models", []), "models", MAX_RESULTS))]
    names: set[str] = set()
    for i, model in enumerate(models):
        if model["name"] in names:
            raise ReportFormatError(f"models[{i}].name: {_found(model['name'])} is used by an earlier result")
        names.add(model["name"])
    checked["models"] = models
    checked["images"] = [_check_row(row, f"images[{i}]", names)
                         for i, row in enumerate(_list(report.get("images", []), "images"))]
    checked["skipped"] = []
    for i, item in enumerate(_list(report.get("skipped", []), "skipped")):
        item = _object_of(item, f"skipped[{i}]")
        _text(_required(item, "file", f"skipped[{i}]"), f"skipped[{i}].file", MAX_PATH)
        _text(_required(item, "reason", f"skipped[{i}]"), f"skipped[{i}].reason")
        checked["skipped"].append(item)
    checked["label_problems"] = [_text(p, f"label_problems[{i}]")
                                 for i, p in enumerate(_list(report.get("label_problems", []), "label_problems"))]
    pairs = len(models) * (len(models) - 1) // 2  # at most one comparison per pair of results
    checked["comparisons"] = [_check_comparison(c, f"comparisons[{i}]", names)
                              for i, c in enumerate(_list(report.get("comparisons", []), "comparisons", pairs))]
    checked["timing"] = _check_timing(report.get("timing", {}), "timing")
    checked["per_class"] = _check_per_class(report.get("per_class", {}), "per_class")
    checked["confusions"] = _check_confusions(report.get("confusions", {}), "confusions")
    for key in ("cancelled", "complete"):
        checked[key] = _flag(report.get(key, False), key)
    return checked
