"""A benchmark's accuracy pass on a Ray cluster: shards of images per model, one worker actor per model per node.

``run_on_cluster`` keeps ``core.session.run_to_folder``'s contract (results.csv as it goes, report.json
after each model, every file at the end, Progress and Cancel) and adds ``resume``. Ray is imported only
when a run starts: the module, the window and the bundle need none.
"""

from __future__ import annotations

import csv
import datetime as _dt
import importlib.util
import json
import logging
import os
import platform
import re
import socket
import stat
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnviewer.core.errors import CnnviewerError, OutputError

if TYPE_CHECKING:
    from cnnviewer.core.benchmark import BenchmarkConfig, BenchmarkReport, ImageRow, ModelResult, Progress
    from cnnviewer.core.datasets import LabelledImage, LabelledSet
    from cnnviewer.core.session import OnProblem

log = logging.getLogger(__name__)

CLUSTER_ENGINES = ("ray",)
#: What the driver sends a worker: "bytes" (it reads each image and sends its bytes: no shared storage
#: needed, the default) or "paths" (the worker opens the same path: the folder is on shared storage).
DATA_MODES = ("bytes", "paths")
DEFAULT_DATA = "bytes"
DEFAULT_SHARD_IMAGES = 64
#: A file larger than this is not read into the driver's memory to be sent (paths mode sends no bytes).
MAX_SEND_BYTES = 256 * 2**20
SHARDS_FILE = "cluster-shards.jsonl"  # one line per finished shard: who ran it, how fast (kept for --resume)
_IN_FLIGHT_PER_WORKER = 2  # one running, one waiting beside it: a worker never idles between shards
_WAIT_S = 0.25  # how often the driver looks at Cancel while shards run


class ClusterError(CnnviewerError):
    """A cluster run that cannot start or go on: Ray missing, no connection, a way it cannot run, a resume
    that does not match the run in its folder."""


@dataclass(frozen=True)
class ClusterOptions:
    engine: str = "ray"
    address: str | None = None  # None: RAY_ADDRESS when set, else a local Ray instance started for the run
    data: str = DEFAULT_DATA
    shard_images: int = DEFAULT_SHARD_IMAGES  # rounded up to a multiple of the batch size
    max_attempts: int = 3  # a shard whose worker dies is tried again elsewhere, at most this many tries in all

    def __post_init__(self) -> None:
        if self.engine not in CLUSTER_ENGINES:
            raise ClusterError(f"'{self.engine}' is not a cluster engine cnnviewer can use; it uses Ray ('ray').")
        if self.data not in DATA_MODES:
            raise ClusterError(f"'{self.data}' is not a way to send images to workers; choose bytes (the driver "
                               "sends each image) or paths (the workers read the folder on shared storage).")
        if self.shard_images < 1 or self.max_attempts < 1:
            raise ClusterError("A shard holds at least 1 image and is tried at least once.")


def cluster_available() -> bool:
    """Whether Ray is installed (the ``cluster`` extra), without importing it."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a broken or half-removed install: as good as none
        return False


def configured_address(settings_value: str | None = None) -> str | None:
    """The cluster a run would use: ``settings_value`` when given, else RAY_ADDRESS, else None (local)."""
    for value in (settings_value, os.environ.get("RAY_ADDRESS")):
        if value and value.strip():
            return value.strip()
    return None


# -- what a worker runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker loads: one model, one way, as the driver's BenchmarkConfig says."""

    model: str
    way: str  # a RunAs label, or "auto" (each worker chooses for its own machine)
    device: str
    channels_last: bool
    fast_decode: bool
    batch_size: int
    decode_threads: int | None
    threads: int  # torch threads: the CPUs Ray was told the worker's node has


_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


class ShardWorker:
    """One model loaded once on one node; ``classify`` runs a shard of images through it.

    Ray makes this an actor (``ray.remote`` at run time). A model that cannot load here is not raised
    from ``__init__`` (Ray would restart-loop or hide it): ``describe`` says why, and the driver reports it.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        import torch

        from cnnviewer.core.catalog import get_entry
        from cnnviewer.core.inference import Classifier
        from cnnviewer.core.models import load_model
        from cnnviewer.core.weights import weights_identity

        self.spec = spec
        self.classifier: Classifier | None = None
        started = time.perf_counter()
        info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "device": spec.device,
                                "gpu": None, "cpu": _cpu_name(), "threads": spec.threads, "way": spec.way,
                                "error": None, "error_kind": None, "weights_sha256": "", "weights": "",
                                "versions": _versions()}
        try:
            import ray

            info["node"] = ray.get_runtime_context().get_node_id()[:8]
        except Exception as exc:  # noqa: BLE001 - outside Ray (the tests' direct use): no node id to record
            log.debug("no Ray node id: %s", exc)
            info["node"] = ""
        try:
            torch.set_num_threads(max(1, spec.threads))
            entry = get_entry(spec.model)
            way = _worker_way(entry, spec)
            info["way"] = way.label
            loaded = load_model(entry, spec.device, way, spec.channels_last)
            identity = weights_identity(entry, loaded.weights_path, with_sha256=True)
            info["weights"], info["weights_sha256"] = identity.weights_id, identity.sha256
            if loaded.device.type == "cuda":
                info["gpu"] = torch.cuda.get_device_name(loaded.device)
            self.classifier = Classifier(loaded, fast_decode=spec.fast_decode)
            del loaded
            self._warm_up()
        except Exception as exc:
            from cnnviewer.core.benchmark import error_kind

            log.exception("%s cannot run on this worker", spec.model)
            info["error"] = f"{spec.model} cannot run on {info['host']}: {exc}"
            info["error_kind"] = error_kind(exc)
        info["load_s"] = time.perf_counter() - started
        self.info = info

    def _warm_up(self) -> None:
        import torch
        from PIL import Image

        classifier = self.classifier
        assert classifier is not None
        side = classifier.decode_min_side
        tensor = classifier.preprocess(Image.new("RGB", (side, side), (128, 128, 128)))
        for size in sorted({max(1, self.spec.batch_size), 1}, reverse=True):
            classifier.predict_batch(torch.stack([tensor] * size), top_k=5)

    def describe(self) -> dict[str, Any]:
        return self.info

    def classify(self, shard: int, names: list[str], payload: list[bytes | None] | None) -> dict[str, Any]:
        """Each image of the shard: [position, top-5 indices, probabilities, error or None], in order. A None
        in ``payload`` is a file the driver could not send: it keeps its place (so the batches are a local
        run's, image for image) and fails here; the driver keeps its own reason for it."""
        if self.classifier is None:
            raise ClusterError(self.info["error"] or "the model did not load on this worker")
        started = time.perf_counter()
        rows: list[list[Any]] = []
        forward_ms = decode_ms = 0.0
        with tempfile.TemporaryDirectory(prefix="cnnviewer-shard-") as folder:
            if payload is None:
                paths = list(names)  # absolute (the driver's): a worker's working folder is not the driver's
            else:  # the bytes as files, so every guard of load_image (size, time, format) applies as it does locally
                paths = []
                for position, (name, data) in enumerate(zip(names, payload, strict=True)):
                    suffix = Path(name).suffix
                    path = os.path.join(folder, f"{position:06d}{suffix if _SAFE_SUFFIX.fullmatch(suffix) else ''}")
                    if data is not None:  # else no file: it fails where it stands, as in a local run
                        with open(path, "wb") as handle:
                            handle.write(data)
                    paths.append(path)
            outcomes = self.classifier.classify_files(paths, top_k=5, batch_size=self.spec.batch_size,
                                                      decode_threads=self.spec.decode_threads)
            for position, outcome in enumerate(outcomes):
                decode_ms += outcome.timings.decode_ms + outcome.timings.preprocess_ms
                if outcome.ok:
                    forward_ms += outcome.timings.inference_ms
                    rows.append([position, [p.index for p in outcome.predictions],
                                 [round(p.probability, 6) for p in outcome.predictions], None])
                else:
                    rows.append([position, [], [], outcome.error or "could not be classified"])
        return {"shard": shard, "rows": rows, "forward_ms": forward_ms, "decode_ms": decode_ms,
                "seconds": time.perf_counter() - started, "pid": os.getpid(), "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float | None:
    """This worker process's peak resident memory so far (MB), where the system keeps it."""
    try:
        import resource
    except ImportError:  # Windows: no getrusage
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if platform.system() == "Darwin" else 2**10), 1)  # bytes on macOS, KiB elsewhere


def _worker_way(entry: Any, spec: WorkerSpec) -> Any:
    from cnnviewer.core.ways import AUTO_LABEL, parse_way

    if spec.way != AUTO_LABEL:
        return parse_way(spec.way)
    from cnnviewer.core.auto import resolve_way
    from cnnviewer.core.ways import AUTO

    return resolve_way(entry, spec.device, AUTO).way  # this worker's machine, measured once and cached there


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                        platform.processor() or platform.machine())
    except OSError:  # not Linux: the platform's own name
        return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import cnnviewer

    found = {"cnnviewer": cnnviewer.__version__, "python": platform.python_version()}
    for package in ("torch", "torchvision"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "none"
    return found


# -- what the driver sends -----------------------------------------------------------------------


def read_for_sending(path: str) -> bytes | str:
    """The file's bytes, or the reason it is not sent (one sentence): only regular files, never more than
    MAX_SEND_BYTES, and never a read that could block (a FIFO or a device is refused before reading)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        from cnnviewer.core.images import _reason_for_os_error

        return _reason_for_os_error(exc)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file (a pipe, device or socket), so it is not read"
        if info.st_size > MAX_SEND_BYTES:
            return (f"the file is {info.st_size / 2**20:,.0f} MB, more than the {MAX_SEND_BYTES // 2**20} MB a "
                    "cluster run sends to a worker; put the folder on shared storage and send paths instead")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_SEND_BYTES:  # grew while read
                return f"the file grew past the {MAX_SEND_BYTES // 2**20} MB a cluster run sends to a worker"
        return b"".join(chunks)
    except OSError as exc:
        from cnnviewer.core.images import _reason_for_os_error

        return _reason_for_os_error(exc)
    finally:
        os.close(fd)


def plan_shards(items: list[LabelledImage], shard_images: int, batch_size: int) -> list[list[LabelledImage]]:
    """Consecutive shards of up to ``shard_images`` (a multiple of the batch size: a worker's batches are then
    the ones a local run makes, image for image, so FP32 gives the same answers)."""
    size = max(1, batch_size)
    per_shard = max(size, -(-shard_images // size) * size)
    return [items[i:i + per_shard] for i in range(0, len(items), per_shard)]


# -- resuming ----------------------------------------------------------------------------------------


def finished_rows(csv_path: Path, items: list[LabelledImage], keys: Iterable[str]
                  ) -> dict[tuple[str, str], tuple[list[int], list[float]]]:
    """(result key, image path) -> (top-5, probabilities) for every whole row of an earlier session's
    results.csv. A row cut short by a killed driver (the last line, without its end) is left out: its
    image runs again. A row naming a file or a model not in this run raises ClusterError."""
    from cnnviewer.core.report import CSV_HEADER
    from cnnviewer.core.text import csv_cell

    by_cell = {str(csv_cell(item.path)): item.path for item in items}
    wanted = {str(csv_cell(key)): key for key in keys}
    done: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    try:
        with open(csv_path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except OSError as exc:
        raise ClusterError(f"{csv_path}: cannot be read to resume the run ({exc.strerror or exc})") from exc
    whole = text[: text.rfind("\n") + 1]  # a last line without its end was being written when the driver died
    lines = list(csv.reader(whole.splitlines(keepends=True)))
    if not lines or lines[0] != CSV_HEADER:
        raise ClusterError(f"{csv_path}: is not a cnnviewer results.csv, so there is nothing to resume from")
    for number, cells in enumerate(lines[1:], 2):
        if len(cells) != len(CSV_HEADER):
            continue  # a shard's rows are written together; a short row is one whose image ran no model
        path, key = by_cell.get(cells[0]), wanted.get(cells[4])
        if path is None or key is None:
            raise ClusterError(f"{csv_path}, line {number}: names {'an image' if path is None else 'a model'} "
                               "that is not in this run; resume with the same folder, models and ways")
        try:
            top = [int(cells[7 + 2 * rank]) for rank in range(5)]
            probabilities = [float(cells[8 + 2 * rank]) for rank in range(5)]
        except ValueError:
            log.warning("%s, line %d: not numbers where the top-5 should be; its image runs again", csv_path, number)
            continue
        done[(key, path)] = (top, probabilities)
    return done


def _check_resumable(out: Path, dataset: LabelledSet, config: BenchmarkConfig) -> BenchmarkReport:
    """The earlier session's report.json, checked to be this run (folder, models, ways, batch, limit, device)."""
    from cnnviewer.core.report import load_json

    if not (out / "results.csv").exists():
        raise ClusterError(f"{out}: holds no results.csv, so there is no run to resume; start it without resume")
    try:
        earlier = load_json(out / "report.json")
    except CnnviewerError as exc:
        raise ClusterError(f"{out}: its report.json cannot be read to resume the run ({exc})") from exc
    if earlier.complete:
        raise ClusterError(f"{out}: holds a run that finished; there is nothing to resume")
    if "cluster" not in earlier.environment:
        raise ClusterError(f"{out}: holds a run made on one machine; only a cluster run resumes")
    now = config.to_json()
    for name in ("models", "ways", "batch_size", "limit", "device", "channels_last", "fast_decode"):
        if earlier.config.get(name) != now.get(name):
            raise ClusterError(f"{out}: was a run with {name} {earlier.config.get(name)!r}, not {now.get(name)!r}; "
                               "resume with the same models, ways and options")
    if os.path.realpath(earlier.root) != os.path.realpath(dataset.root):
        raise ClusterError(f"{out}: was a run of {earlier.root}, not of {dataset.root}")
    return earlier


# -- the driver --------------------------------------------------------------------------------------


@dataclass
class _Slot:
    """One worker actor of the model whose turn it is, and the shards it has in hand."""

    node: str
    handle: Any
    info: dict[str, Any] = field(default_factory=dict)
    busy: int = 0
    alive: bool = True
    replaced: bool = False  # a fresh worker took its place on its node (or it was one, found unusable)


@dataclass
class _Shard:
    number: int  # 1-based, of this model; a resumed session goes on from the earlier sessions' numbers
    items: list[LabelledImage]
    attempt: int = 1
    unsent: dict[int, str] = field(default_factory=dict)  # position -> why the driver could not send it


class _Driver:
    def __init__(self, dataset: LabelledSet, config: BenchmarkConfig, out: Path, options: ClusterOptions, *,
                 progress: Callable[[Progress], None] | None, should_cancel: Callable[[], bool] | None,
                 on_update: Callable[[BenchmarkReport], None], on_rows: Callable[[str, list[ImageRow]], None],
                 on_shard: Callable[[dict[str, Any]], None] | None, done: dict[tuple[str, str], tuple[list[int],
                                                                                                   list[float]]],
                 earlier: BenchmarkReport | None) -> None:
        from cnnviewer.core.benchmark import BenchmarkReport, ImageRow, environment

        self.config, self.options, self.out = config, options, out
        self.items = list(dataset.images[: config.limit] if config.limit else dataset.images)
        self.runs = config.runs()
        self.report = BenchmarkReport(root=dataset.root, config={**config.to_json(), "cluster": asdict(options)},
                                      environment=environment(config), label_problems=list(dataset.problems))
        self.rows = {item.path: ImageRow(item.path, item.label, item.index) for item in self.items}
        self.report.images = list(self.rows.values())
        self.skipped: dict[str, str] = {}
        self._progress, self._should_cancel = progress, should_cancel
        self._on_update, self._on_rows, self._on_shard = on_update, on_rows, on_shard
        self.done = done
        for (key, path), (top, probabilities) in done.items():
            self.rows[path].top5[key] = top
            self.rows[path].probabilities[key] = probabilities
        self.cluster: dict[str, Any] = {
            "engine": options.engine, "address": "", "data": options.data, "shard_images": options.shard_images,
            "split": "", "nodes": [], "workers": [], "shards": [], "retries": [], "resumed": []}
        #: result key -> (weights, SHA-256) of the interrupted session: the rows read back are that file's
        self.earlier_weights = {m.name: (m.weights, m.weights_sha256) for m in earlier.models} if earlier else {}
        #: result key -> seconds of its turns in the interrupted sessions, for a model that finished in one
        self.earlier_seconds = {m.name: m.seconds for m in earlier.models if m.error is None} if earlier else {}
        self._turn_started = time.perf_counter()
        if earlier is not None:
            before = earlier.environment["cluster"]
            for name in ("resumed", "retries"):
                self.cluster[name] = list(before.get(name) or [])
            self.cluster["shards"] = _kept_shards(out / SHARDS_FILE)
            for shard in self.cluster["shards"]:  # a model the driver died in has no result yet, but its shards
                if shard.get("weights_sha256") and shard["model"] not in self.earlier_weights:
                    self.earlier_weights[shard["model"]] = ("", str(shard["weights_sha256"]))
            entry: dict[str, Any] = {"date": _now(), "rows": len(done), "models": _rows_per_model(done)}
            unrecorded = unrecorded_rows(done, self.cluster["shards"], self.cluster["resumed"])
            if unrecorded:  # the driver died after their rows reached results.csv, before their shard's record
                entry["unrecorded"] = unrecorded
            self.cluster["resumed"].append(entry)
        self.report.environment["cluster"] = self.cluster

    def cancelled(self) -> bool:
        return bool(self._should_cancel and self._should_cancel())

    def _tell(self, number: int, key: str, done: int, text: str = "") -> None:
        from cnnviewer.core.benchmark import Progress

        if self._progress is not None:
            self._progress(Progress(key, number, len(self.runs), done, len(self.items), text or key))

    def run(self, ray: Any) -> BenchmarkReport:
        from cnnviewer.core.benchmark import _finish_statistics

        nodes = _alive_nodes(ray, self.config.device)
        if not nodes:
            raise ClusterError(f"the cluster at {self.cluster['address']} has no node that can run a model "
                               f"on {self.config.device}")
        self.cluster["nodes"] = [{k: v for k, v in node.items() if k != "id"} for node in nodes]
        per_shard = plan_shards(self.items, self.options.shard_images, self.config.batch_size)
        self.cluster["split"] = (f"{len(self.items)} images per model in {len(per_shard)} shard(s) of up to "
                                 f"{len(per_shard[0]) if per_shard else 0}, handed to {len(nodes)} worker(s) (one "
                                 "per node) as each became free")
        self._on_update(self.report)
        for number, (key, model, way) in enumerate(self.runs, 1):
            if self.cancelled():
                break
            self._run_model(ray, number, key, model, way.label, nodes)
            _finish_statistics(self.report)
            self._publish()
        return self.finish()

    def finish(self, cancelled: bool = False) -> BenchmarkReport:
        from cnnviewer.core.benchmark import _count_from_rows, _finish_statistics, _mark_partial

        report = self.report
        for result in report.models:  # the model a second Ctrl+C stopped: the images whose answers came back
            if result.error is None and not result.complete and not result.partial:
                _count_from_rows(result, report.images)
                _mark_partial(result)
        report.cancelled = cancelled or self.cancelled()
        report.complete = not report.cancelled and len(report.models) == len(self.runs) and all(
            m.complete or m.error for m in report.models)
        _finish_statistics(report)
        self._publish()
        return report

    def _publish(self) -> None:
        # The per-worker table from every shard so far: after each model and at the end, not after each shard
        # (a sweep has tens of thousands of shards, and each would go over all the others).
        self.cluster["workers"] = per_worker(self.cluster["shards"])
        self.report.skipped = [{"file": f, "reason": r} for f, r in self.skipped.items()]
        self._on_update(self.report)

    def _result(self, key: str, model: str, way: str) -> ModelResult:
        from cnnviewer.core.benchmark import ModelResult, error_kind
        from cnnviewer.core.catalog import get_entry
        from cnnviewer.core.errors import UnknownModelError

        try:
            entry = get_entry(model)
        except UnknownModelError as exc:
            return ModelResult(name=key, title=key, weights="", model=model, run_as=way, error=str(exc),
                               error_kind=error_kind(exc))
        title = entry.title if key == model else f"{entry.title} ({way})"
        return ModelResult(name=key, title=title, weights=entry.weights_id, model=model, run_as=way,
                           published={"acc1": entry.acc1, "acc5": entry.acc5, "gmacs": entry.gmacs,
                                      "params": entry.num_params})

    def _run_model(self, ray: Any, number: int, key: str, model: str, way: str, nodes: list[dict[str, Any]]) -> None:
        from cnnviewer.core.benchmark import _mark_partial

        result = self._result(key, model, way)
        self.report.models.append(result)
        if result.error:
            return
        started = self._turn_started = time.perf_counter()
        todo = [item for item in self.items if (key, item.path) not in self.done]
        finished = len(self.items) - len(todo)
        if not todo:  # every image's answer was read back from results.csv: nothing to load anywhere
            self._settle(result, way, earlier=True)
            result.seconds = self._seconds_before(key)
            return
        before = max((int(s["shard"]) for s in self.cluster["shards"] + self.cluster["retries"]
                      if s.get("model") == key and isinstance(s.get("shard"), int)), default=0)
        queue = deque(_Shard(before + n, items) for n, items in enumerate(plan_shards(
            todo, self.options.shard_images, self.config.batch_size), 1))
        self._tell(number, key, finished, f"starting {len(nodes)} worker(s) for {key}")
        slots = [self._start(ray, model, way, node) for node in nodes]
        flying: dict[Any, tuple[_Slot, _Shard]] = {}
        try:
            self._check_workers(ray, result, slots)
            while (queue or flying) and result.error is None:
                if self.cancelled():
                    break
                self._hand_out(ray, queue, flying, slots, result, model, way)
                if not flying:
                    break
                ready, _ = ray.wait(list(flying), num_returns=1, timeout=_WAIT_S)
                for ref in ready:
                    slot, shard = flying.pop(ref)
                    slot.busy -= 1
                    finished += self._collect(ray, ref, slot, shard, queue, result)
                    self._tell(number, key, finished)
        finally:
            for slot in slots:
                _kill(ray, slot.handle)
        result.seconds = time.perf_counter() - started + self._seconds_before(key)
        self._settle(result, way, earlier=False)
        if result.error is None and (queue or flying):  # Cancel: the images it saw, no speed figures
            _mark_partial(result)

    def _seconds_before(self, key: str) -> float:
        """The model's time in the interrupted sessions: its result's, when it finished in one; else, for each
        session, how far into its turn that session's last shard of it came back (0 for a first session)."""
        if self.earlier_seconds.get(key):
            return float(self.earlier_seconds[key])
        reached: dict[Any, float] = {}
        now = len(self.cluster["resumed"])  # this session's shards are in its own time
        for shard in self.cluster["shards"]:
            turn, session = shard.get("turn_s"), shard.get("session")
            if shard.get("model") == key and session != now and isinstance(turn, (int, float)) \
                    and not isinstance(turn, bool):
                reached[session] = max(reached.get(session, 0.0), float(turn))
        return sum(reached.values())

    def _settle(self, result: ModelResult, way: str, earlier: bool) -> None:
        """A model's figures from its rows; complete unless something stopped it (the caller says partial).
        ``earlier``: every row came from an earlier session, whose weights the report already names."""
        from cnnviewer.core.benchmark import _count_from_rows

        _count_from_rows(result, self.report.images)
        result.failed = sum(1 for item in self.items if item.path in self.skipped)
        result.run_as = _one_way(self.cluster["shards"], result.name, way)
        result.auto = way == "auto"
        if earlier:
            kept = self.earlier_weights.get(result.name)
            if kept:
                result.weights, result.weights_sha256 = kept
        result.complete = result.error is None
        # Speed is each worker's (environment["cluster"]["workers"]); one figure summed from different
        # machines would say nothing about any of them.
        result.throughput_ips = result.end_to_end_ips = result.latency_ms = None

    def _start(self, ray: Any, model: str, way: str, node: dict[str, Any]) -> _Slot:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        config = self.config
        spec = WorkerSpec(model=model, way=way, device=config.device, channels_last=config.channels_last,
                          fast_decode=config.fast_decode, batch_size=config.batch_size,
                          decode_threads=config.decode_threads, threads=max(1, int(node["cpus"])))
        gpu = config.device.startswith("cuda")
        actor = ray.remote(ShardWorker).options(
            num_cpus=0 if gpu else 1, num_gpus=1 if gpu else 0, max_restarts=0, max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["id"], soft=True))
        return _Slot(node=node["node"], handle=actor.remote(spec))

    def _check_workers(self, ray: Any, result: ModelResult, slots: list[_Slot]) -> None:
        """Each worker's description; a model that loads on none is the model's error, with the first reason.
        Workers whose weights differ from the others' (another file on another node) stop the model."""
        if not self._describe_all(ray, slots):
            return  # cancelled while the workers loaded the model: the caller marks the result partial
        ready = [slot for slot in slots if slot.alive and not slot.info.get("error")]
        if not ready:
            reasons = [slot.info.get("error") for slot in slots if slot.info.get("error")]
            kinds = [slot.info.get("error_kind") for slot in slots if slot.info.get("error_kind")]
            result.error = str(reasons[0] if reasons else f"{result.name}: no worker of the cluster could start")
            result.error_kind = str(kinds[0]) if kinds else "failed"
            return
        for slot in slots:
            if slot.alive and slot.info.get("error"):  # this node lacks the model: the others run it
                log.warning("%s", slot.info["error"])
                slot.alive = False
        hashes = {slot.info.get("weights_sha256") for slot in ready}
        if len(hashes) > 1:
            result.error = (f"{result.name}: the workers have different weights files (SHA-256 "
                            f"{', '.join(sorted(str(h)[:12] for h in hashes))}); give every node the same file")
            result.error_kind = "weights_file"
            return
        first = ready[0].info
        result.weights, result.weights_sha256 = first.get("weights") or result.weights, first.get("weights_sha256", "")
        kept = self.earlier_weights.get(result.name)
        if kept and kept[1] and kept[1] != result.weights_sha256:  # a resume: the rows read back are the old file's
            result.error = (f"{result.name}: its weights file changed since the interrupted run (SHA-256 "
                            f"{kept[1][:12]} then, {str(result.weights_sha256)[:12]} now); the rows read back and "
                            "the new ones would mix two models: start a new run")
            result.error_kind = "weights_file"
            return
        if first.get("weights", "").startswith("imported"):
            result.published = {**result.published, "acc1": None, "acc5": None}

    def _describe_all(self, ray: Any, slots: list[_Slot]) -> bool:
        """Each worker's description, as each finishes loading (a big model, or auto measuring, takes a
        while); False when Cancel came first. A worker that died while loading is left out."""
        pending = {slot.handle.describe.remote(): slot for slot in slots}
        while pending:
            if self.cancelled():
                return False
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=_WAIT_S)
            for ref in ready:
                slot = pending.pop(ref)
                try:
                    slot.info = dict(ray.get(ref))
                except ray.exceptions.RayError as exc:
                    slot.alive = False
                    slot.info = {"error": f"a worker on node {slot.node} died while loading ({_first_line(exc)})",
                                 "error_kind": "failed"}
        return True

    def _hand_out(self, ray: Any, queue: deque[_Shard], flying: dict[Any, tuple[_Slot, _Shard]],
                  slots: list[_Slot], result: ModelResult, model: str, way: str) -> None:
        """Give waiting shards to workers with room. A worker that died is replaced on its node when the node
        is still alive (at most max_attempts times per node and model); none left: the model's error."""
        dead = [slot for slot in slots if not slot.alive and not slot.replaced and not slot.info.get("error")]
        if queue and dead:
            alive = {node["node"]: node for node in _alive_nodes(ray, self.config.device)}
            for slot in dead:
                slot.replaced = True
                tries = sum(1 for other in slots if other.node == slot.node)
                if slot.node in alive and tries < self.options.max_attempts + 1:
                    fresh = self._start(ray, model, way, alive[slot.node])
                    slots.append(fresh)
                    # Checked as the first workers were before it gets a shard: loaded, with the same weights.
                    if not self._describe_all(ray, [fresh]):
                        return
                    if fresh.info.get("error") or fresh.info.get("weights_sha256") != result.weights_sha256:
                        log.warning("a fresh worker for %s on node %s is not used: %s", result.name, slot.node,
                                    fresh.info.get("error") or "its weights differ from the other workers'")
                        fresh.alive, fresh.replaced = False, True
                        _kill(ray, fresh.handle)
        if queue and not any(slot.alive for slot in slots):
            result.error = f"{result.name}: every worker of the cluster died; {len(queue)} shard(s) were not run"
            result.error_kind = "failed"
            return
        for level in range(1, _IN_FLIGHT_PER_WORKER + 1):  # a shard to each worker before a second to any
            for slot in slots:
                if queue and slot.alive and slot.busy < level:
                    shard = queue.popleft()
                    flying[self._send(slot, shard)] = (slot, shard)
                    slot.busy += 1

    def _send(self, slot: _Slot, shard: _Shard) -> Any:
        """The shard to a worker: every image keeps its place (a file the driver cannot send is a gap that
        fails there, its reason the driver's), so the worker's batches are a local run's."""
        if self.options.data == "paths":
            names = [os.path.abspath(item.path) for item in shard.items]
            return slot.handle.classify.remote(shard.number, names, None)
        payload: list[bytes | None] = []
        shard.unsent = {}
        for position, item in enumerate(shard.items):
            data = read_for_sending(item.path)
            if isinstance(data, str):
                shard.unsent[position] = data
                payload.append(None)
            else:
                payload.append(data)
        return slot.handle.classify.remote(shard.number, [item.path for item in shard.items], payload)

    def _collect(self, ray: Any, ref: Any, slot: _Slot, shard: _Shard, queue: deque[_Shard],
                 result: ModelResult) -> int:
        """A shard's answer into the rows and results.csv (once: a retried shard's rows come from one try);
        a dead worker's shard back into the queue. Images finished."""
        key = result.name
        try:
            answer = ray.get(ref)
        except ray.exceptions.RayError as exc:
            died = not isinstance(exc, ray.exceptions.RayTaskError)
            slot.alive = slot.alive and not died
            reason = (f"the worker process died ({_first_line(exc)})" if died
                      else f"the worker failed ({_first_line(exc)})")
            self.cluster["retries"].append({"model": key, "shard": shard.number, "host": slot.info.get("host", ""),
                                            "node": slot.node, "pid": slot.info.get("pid"),
                                            "attempt": shard.attempt, "reason": reason})
            log.warning("%s shard %d on %s: %s", key, shard.number, slot.info.get("host"), reason)
            if shard.attempt >= self.options.max_attempts:
                result.error = (f"{key}: shard {shard.number} failed {shard.attempt} times; the last time: {reason}")
                result.error_kind = "failed"
                return 0
            shard.attempt += 1
            queue.appendleft(shard)
            return 0
        from cnnviewer.core.benchmark import ImageRow

        answers: list[tuple[LabelledImage, list[int], list[float]]] = []
        failed = 0
        for position, top, probabilities, error in answer["rows"]:
            item = shard.items[position]
            if error is not None:
                self.skipped[item.path] = shard.unsent.get(position) or str(error)
                failed += 1
            else:
                answers.append((item, list(top), list(probabilities)))
        if answers:  # results.csv first: a stop while it is written leaves these rows out of the report too
            self._on_rows(key, [ImageRow(item.path, item.label, item.index, {key: top}, {key: probabilities})
                                for item, top, probabilities in answers])
        for item, top, probabilities in answers:
            row = self.rows[item.path]
            row.top5[key], row.probabilities[key] = top, probabilities
            self.done[(key, item.path)] = (top, probabilities)
        info = slot.info
        record = {"model": key, "shard": shard.number, "session": len(self.cluster["resumed"]),
                  "images": len(answers), "failed": failed,
                  "host": info.get("host", ""), "node": info.get("node") or slot.node,
                  "pid": answer.get("pid", info.get("pid")),
                  "device": info.get("device", ""), "gpu": info.get("gpu"), "cpu": info.get("cpu", ""),
                  "threads": info.get("threads"), "way": info.get("way", ""), "attempt": shard.attempt,
                  "seconds": round(float(answer["seconds"]), 4), "forward_ms": round(float(answer["forward_ms"]), 3),
                  "decode_ms": round(float(answer["decode_ms"]), 3), "load_s": round(float(info.get("load_s", 0)), 3),
                  "peak_rss_mb": answer.get("peak_rss_mb"), "weights_sha256": info.get("weights_sha256", ""),
                  # how far into the model's turn (this session's) it came back: a resume adds it to the turn's time
                  "turn_s": round(time.perf_counter() - self._turn_started, 3)}
        self.cluster["shards"].append(record)
        _append_shard(self.out / SHARDS_FILE, record)
        if self._on_shard is not None:
            self._on_shard(dict(record))
        return len(answer["rows"])


def per_worker(shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, worker process) from the shard records: its own images/s, never summed across."""
    workers: dict[tuple[str, str, Any], dict[str, Any]] = {}
    for shard in shards:
        worker = workers.setdefault((shard["model"], shard["node"], shard["pid"]), {
            "model": shard["model"], "host": shard["host"], "node": shard["node"], "pid": shard["pid"],
            "device": shard["device"], "gpu": shard.get("gpu"), "cpu": shard.get("cpu", ""),
            "threads": shard.get("threads"), "way": shard["way"], "images": 0, "failed": 0, "shards": 0,
            "forward_s": 0.0, "seconds": 0.0, "load_s": shard.get("load_s", 0.0)})
        if shard.get("peak_rss_mb") is not None:
            worker["peak_rss_mb"] = max(worker.get("peak_rss_mb") or 0.0, float(shard["peak_rss_mb"]))
        worker["images"] += shard["images"]
        worker["failed"] += shard["failed"]
        worker["shards"] += 1
        worker["forward_s"] += shard["forward_ms"] / 1000
        worker["seconds"] += shard["seconds"]
    rows = []
    for worker in workers.values():
        forward_s, seconds = worker.pop("forward_s"), worker.pop("seconds")
        worker["forward_ips"] = round(worker["images"] / forward_s, 2) if forward_s > 0 and worker["images"] else None
        # Images classified per second of its shards, file to top-5: a file that failed is no answer.
        worker["end_to_end_ips"] = round(worker["images"] / seconds, 2) if seconds > 0 and worker["images"] else None
        rows.append(worker)
    return rows


def _one_way(shards: list[dict[str, Any]], key: str, asked: str) -> str:
    """The way a model ran: its shards' one way, or "fp32/onnxruntime" when auto chose differently on workers."""
    ways = sorted({str(shard["way"]) for shard in shards if shard["model"] == key})
    return ways[0] if len(ways) == 1 else "/".join(ways) if ways else asked


def _alive_nodes(ray: Any, device: str) -> list[dict[str, Any]]:
    gpu = device.startswith("cuda")
    nodes = []
    for node in ray.nodes():
        resources = node.get("Resources") or {}
        if not node.get("Alive") or (resources.get("GPU", 0) if gpu else resources.get("CPU", 0)) < 1:
            continue
        nodes.append({"id": node["NodeID"], "node": node["NodeID"][:8], "host": node.get("NodeManagerHostname", ""),
                      "ip": node.get("NodeManagerAddress", ""), "cpus": int(resources.get("CPU", 0)),
                      "gpus": int(resources.get("GPU", 0))})
    return sorted(nodes, key=lambda n: (n["host"], n["node"]))


def _kill(ray: Any, handle: Any) -> None:
    try:
        ray.kill(handle, no_restart=True)
    except Exception as exc:  # noqa: BLE001 - already gone with its node: nothing left to stop
        log.debug("stopping a worker: %s", exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _append_shard(path: Path, record: dict[str, Any]) -> None:
    from cnnviewer.core.text import json_text

    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json_text(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:  # results.csv holds the answers; this only keeps the speed of a resumed run's shards
        log.warning("%s: cannot be written (%s); a resumed run would lack these shards' speed", path, exc)


def unrecorded_rows(done: dict[tuple[str, str], Any], shards: list[dict[str, Any]],
                    resumed: list[dict[str, Any]]) -> dict[str, int]:
    """Result key -> rows of results.csv that no shard record (and no earlier resume) accounts for.

    A shard's rows are written before its record, so a driver killed between the two leaves rows whose
    worker and speed are unknown: they are counted (not classified again) and said to be unrecorded."""
    def whole(value: object) -> int:  # the files were written by an earlier session, but may have been edited
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    counts = _rows_per_model(done)
    for shard in shards:
        counts[str(shard["model"])] = counts.get(str(shard["model"]), 0) - whole(shard["images"])
    for entry in resumed:
        earlier = entry.get("unrecorded") if isinstance(entry, dict) else None
        for key, rows in (earlier.items() if isinstance(earlier, dict) else ()):
            counts[str(key)] = counts.get(str(key), 0) - whole(rows)
    return {key: rows for key, rows in counts.items() if rows > 0}


def _rows_per_model(done: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Result key -> rows read back, from the (result key, image path) keys of finished_rows."""
    return dict(Counter(key for key, _path in done))


def _kept_shards(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:  # the line being written when the driver died
            continue
        if isinstance(record, dict) and {"model", "node", "pid", "images", "failed", "forward_ms",
                                         "seconds", "host", "device", "way"} <= record.keys():
            kept.append(record)
    return kept


CONNECT_TIMEOUT_S = 60.0  # Ray's own connect retries for minutes when something else answers on the port


def _connect(ray: Any, options: ClusterOptions, should_cancel: Callable[[], bool] | None = None,
             timeout_s: float = CONNECT_TIMEOUT_S) -> str:
    """Connect to the cluster (ray.init); the address as the report says it ("local": started for this run).

    For a cluster, ray.init runs in a thread of its own, so a port where something other than Ray's head
    answers (Ray would retry for minutes), a slow network or Cancel never holds the run: after ``timeout_s``
    it is a ClusterError. A local instance starts in the calling thread: Ray ties the processes it starts to
    the thread that started them (they are killed when it ends), and the run goes on in this one."""
    address = configured_address(options.address)
    settings: dict[str, Any] = {"log_to_driver": False, "configure_logging": False, "namespace": "cnnviewer"}
    where = f"the Ray cluster at {address}" if address else "a local Ray instance"
    hints = {"cli_hint": "Check RAY_ADDRESS, and that it is the address `ray start --head` printed.",
             "gui_hint": "Check the cluster address, and that it is the address `ray start --head` printed."}
    if address is not None:
        _check_reachable(address)
    outcome: list[BaseException | None] = []

    def init() -> None:
        try:
            if address is None:
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local instance reports nothing anywhere
                ray.init(address="local", include_dashboard=False, **settings)  # never a cluster found here
            else:
                ray.init(address=address, **settings)
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError...: said as one sentence
            outcome.append(exc)

    quiet = logging.getLogger("ray")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "SIGTERM handler is not set ... not the main thread": Ray's, not the user's
    try:
        connecting = threading.Thread(target=init, name="cnnviewer-ray-connect", daemon=True)
        if address is None:
            init()
        else:
            connecting.start()
        deadline = time.monotonic() + timeout_s
        while connecting.is_alive():
            connecting.join(_WAIT_S)
            if connecting.is_alive() and should_cancel is not None and should_cancel():
                raise ClusterError(f"cancelled while connecting to {where}")
            if connecting.is_alive() and time.monotonic() > deadline:
                raise ClusterError(f"cannot connect to {where}: it did not answer as a Ray cluster within "
                                   f"{timeout_s:.0f} s.", **hints)
    finally:
        quiet.setLevel(level)
    if outcome and outcome[0] is not None:
        exc = outcome[0]
        text = _first_line(exc).replace(f" at {address}", "") if address else _first_line(exc)
        raise ClusterError(f"cannot connect to {where} ({text}).", **hints) from exc
    return address or "local"


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A cluster address that no one answers is said in seconds: Ray's own connect retries for minutes."""
    host_port = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        if address.strip().lower() == "auto":  # Ray's "the cluster started on this machine"
            return
        raise ClusterError(f"'{address}' is not a cluster address; give HOST:PORT, as `ray start --head` printed it")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterError(f"cannot connect to the Ray cluster at {address} ({exc.strerror or exc}).",
                           cli_hint="Check RAY_ADDRESS and that `ray start --head` runs there.",
                           gui_hint="Check the cluster address and that the cluster runs.") from exc


def run_on_cluster(dataset: LabelledSet, config: BenchmarkConfig, out_dir: str | os.PathLike[str],
                   options: ClusterOptions, *,
                   progress: Callable[[Progress], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None,
                   on_snapshot: Callable[[BenchmarkReport], None] | None = None,
                   on_problem: OnProblem | None = None,
                   on_shard: Callable[[dict[str, Any]], None] | None = None,
                   resume: bool = False) -> BenchmarkReport:
    """``config`` over ``dataset`` on a Ray cluster into ``out_dir``: core.session.run_to_folder's contract.

    Each model's images are split into shards; each node runs one worker that loads the model once and
    takes shards as it becomes free. A shard whose worker dies goes back to the queue and runs on another
    worker (at most ``options.max_attempts`` times); its rows reach results.csv once, from the try that
    finished. With ``resume`` the run in ``out_dir`` goes on from its results.csv: finished rows are read
    back, never run again. int8 is refused (its calibration is one machine's).
    """
    from cnnviewer.core.report import ResultsCsv
    from cnnviewer.core.session import RunOutputs
    from cnnviewer.core.ways import INT8

    if INT8 in config.ways:
        raise ClusterError("int8 does not run on a cluster (its calibration is made on one machine); run it "
                           "without the cluster, or choose fp32, bf16, onnxruntime or auto")
    if not cluster_available():
        raise ClusterError("Ray is not installed, so there is no cluster to run on.",
                           cli_hint="Install it with: pip install 'cnnviewer[cluster]'.",
                           gui_hint="Install cnnviewer's cluster extra (pip install 'cnnviewer[cluster]').")
    out = Path(os.fspath(out_dir))
    items = list(dataset.images[: config.limit] if config.limit else dataset.images)
    keys = [key for key, _, _ in config.runs()]
    earlier = _check_resumable(out, dataset, config) if resume else None
    done = finished_rows(out / "results.csv", items, keys) if resume else {}
    if not resume:
        try:  # a shards file left by an earlier run with --overwrite would mix its shards into this run's
            (out / SHARDS_FILE).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutputError(f"{out / SHARDS_FILE}: cannot be replaced ({exc.strerror or exc})") from exc
    import ray

    address = _connect(ray, options, should_cancel)  # before any file: a cluster not there leaves nothing behind
    try:
        results = ResultsCsv(out / "results.csv", resume=resume)
    except OutputError:
        ray.shutdown()
        raise
    outputs = RunOutputs(out, results, on_snapshot, on_problem)
    on_rows, on_update = outputs.on_rows, outputs.on_update

    driver = _Driver(dataset, config, out, options, progress=progress, should_cancel=should_cancel,
                     on_update=on_update, on_rows=on_rows, on_shard=on_shard, done=done, earlier=earlier)
    driver.cluster["address"] = address
    try:
        try:
            report = driver.run(ray)
        except KeyboardInterrupt:  # stopped at once: the report keeps the shards that had come back
            report = driver.finish(cancelled=True)
        except Exception:  # a cluster that stopped answering, or anything else: the report of what came back
            outputs.write_after_failure(_cut_short(driver))
            raise
    finally:
        results.close()
        if ray.is_initialized():
            ray.shutdown()  # disconnects from a cluster; stops a local instance started for the run
    outputs.write_final(report)
    return report


def _cut_short(driver: _Driver) -> BenchmarkReport:
    from cnnviewer.core.benchmark import _finish_statistics

    report = driver.report
    report.complete = False
    driver.cluster["workers"] = per_worker(driver.cluster["shards"])
    report.skipped = [{"file": f, "reason": r} for f, r in driver.skipped.items()]
    _finish_statistics(report)
    return report
