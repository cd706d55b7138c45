"""A way of running a model: one value type for the window's "Run as", the CLI's ``--run-as`` and reports.

A ``RunAs`` is a precision and an engine. Its ``label`` ("fp32", "bf16", "onnxruntime", "int8") is what
people see and what reports store; ``parse_way`` turns a label back into the value. Everything that
runs a model (the model cache, classification results, benchmark results) carries one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cnnviewer.core.errors import CnnviewerError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
ENGINES = ("torch", "onnxruntime")


@dataclass(frozen=True, order=True)
class RunAs:
    """How a model runs: ``precision`` "fp32", "bf16" or "int8", ``engine`` "torch" or "onnxruntime"."""

    precision: str = "fp32"
    engine: str = "torch"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise CnnviewerError(f"Unknown precision '{self.precision}'; choose one of {', '.join(PRECISIONS)}.")
        if self.engine not in ENGINES:
            raise CnnviewerError(f"Unknown engine '{self.engine}'; choose one of {', '.join(ENGINES)}.")
        if self.precision == "int8" and self.engine != "onnxruntime":
            raise CnnviewerError("int8 runs on ONNX Runtime only (a quantized copy of the FP32 export); choose "
                                 "the onnxruntime engine for it.")
        if self.engine == "onnxruntime" and self.precision not in ("fp32", "int8"):
            raise CnnviewerError("ONNX Runtime runs the FP32 weights or their int8 quantization only; choose "
                                 "fp32 or int8 precision for it.")

    @property
    def label(self) -> str:
        """The name people see: "fp32", "bf16", "onnxruntime" or "int8"."""
        return next(label for label, way in WAYS.items() if way == self)

    @property
    def has_gradients(self) -> bool:
        """Whether Grad-CAM can run this way (eager torch in FP32); otherwise it runs in FP32 and says so."""
        return self == FP32

    def __str__(self) -> str:
        return self.label


FP32 = RunAs()
BF16 = RunAs("bf16")
ONNXRUNTIME = RunAs("fp32", "onnxruntime")
#: ONNX Runtime on an int8 quantization of the FP32 export, calibrated on photos the user chooses
#: (core.quantize); fast on CPUs with VNNI or AMX (quantize.int8_supported), slower elsewhere.
INT8 = RunAs("int8", "onnxruntime")
#: Every way, by label, in the order pickers list them.
WAYS: dict[str, RunAs] = {"fp32": FP32, "bf16": BF16, "onnxruntime": ONNXRUNTIME, "int8": INT8}


def parse_way(label: str) -> RunAs:
    """The way named ``label`` (as written by ``RunAs.label``); CnnviewerError names the choices."""
    way = WAYS.get(label.strip().lower()) if isinstance(label, str) else None
    if way is None:
        raise CnnviewerError(f"Unknown way of running '{label}'; choose from {', '.join(WAYS)}.")
    return way


def parse_ways(text: str) -> tuple[RunAs, ...]:
    """"fp32,bf16" -> (FP32, BF16): comma-separated labels, repeats dropped, order kept; "" -> ()."""
    ways = [parse_way(part) for part in text.split(",") if part.strip()]
    return tuple(dict.fromkeys(ways))


def way_of(precision: str, engine: str) -> RunAs:
    """The way with this precision and engine (reports written before ways had labels store these)."""
    return RunAs(precision, engine)


def available_ways(device: str = "cpu") -> list[RunAs]:
    """The ways this machine can run on ``device``: fp32 always; bf16 where the hardware has it;
    onnxruntime and int8 on the CPU where the package is installed (int8 runs on every CPU; it is fast
    only with VNNI or AMX, which core.quantize.int8_supported tells)."""
    from cnnviewer.core.engines import onnxruntime_available
    from cnnviewer.core.models import bf16_supported, resolve_device

    kind = resolve_device(device).type
    ways = [FP32]
    if bf16_supported(device):
        ways.append(BF16)
    if kind == "cpu" and onnxruntime_available():
        ways += [ONNXRUNTIME, INT8]
    return ways


#: The choice that stands for "the fastest way whose top-5 equals FP32's here" (core.auto measures it).
AUTO_LABEL = "auto"


@dataclass(frozen=True)
class AutoWay:
    """The choice ``auto``: not a way that runs, but a request to pick one (core.auto.resolve_way does)."""

    @property
    def label(self) -> str:
        return AUTO_LABEL

    def __str__(self) -> str:
        return AUTO_LABEL


AUTO = AutoWay()
#: What a picker offers: auto first (the default), then every way.
WAY_CHOICES: tuple[str, ...] = (AUTO_LABEL, *WAYS)


def parse_way_choice(label: str) -> RunAs | AutoWay:
    """``"auto"`` -> AUTO, any label of ``WAYS`` -> its RunAs; CnnviewerError names the choices."""
    if isinstance(label, str) and label.strip().lower() == AUTO_LABEL:
        return AUTO
    try:
        return parse_way(label)
    except CnnviewerError:
        raise CnnviewerError(f"Unknown way of running '{label}'; choose from {', '.join(WAY_CHOICES)}.") from None
