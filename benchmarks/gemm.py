"""The GEMM ceiling: how fast this machine multiplies matrices in FP32, BF16 and int8, in one run.

    python benchmarks/gemm.py [--repeat 5]

A 4096 x 4096 x 4096 product and two of ResNet50's own GEMM shapes (im2col of a 3x3 convolution in
its first stage and in its last: M = output pixels x batch 16, K = 9 x input channels, N = output
channels), with torch's threads, in FP32 and BF16 (torch.matmul, oneDNN/MKL) and int8 (ONNX Runtime
MatMulInteger, uint8 x int8 -> int32, the VNNI path). torch._int_mm is timed too, on a 1024-cube
only: on CPUs it is a plain loop (about 2 GOP/s here), not a ceiling. Prints GFLOP/s (GOP/s for int8; one multiply-add = 2
operations), best of ``--repeat`` and the range.

Other scripts import ``measure_ceiling`` and ``fraction_of_ceiling``: a way's images/s times the
model's GFLOP per image (the catalog's ``gmacs`` x 2), over the ceiling of its precision.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: (label, M, K, N). ResNet50 at batch 16: layer1's 3x3 conv (56x56 pixels, 64 -> 64 channels) and
#: layer4's (7x7 pixels, 512 -> 512), as the matrix products oneDNN's im2col GEMMs are.
SHAPES = (
    ("4096x4096x4096", 4096, 4096, 4096),
    ("ResNet50 layer1 3x3 (50176x576x64)", 16 * 56 * 56, 9 * 64, 64),
    ("ResNet50 layer4 3x3 (784x4608x512)", 16 * 7 * 7, 9 * 512, 512),
)
PRECISIONS = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class Rate:
    """One shape in one precision: the best rate and the slowest, in G(FL)OP/s."""

    precision: str
    shape: str
    best: float
    worst: float
    engine: str


def _time(run: Callable[[], object], operations: float, repeat: int) -> tuple[float, float]:
    run()  # warm-up: packing, kernel selection, first-touch of the output
    rates = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        run()
        rates.append(operations / (time.perf_counter() - started) / 1e9)
    return max(rates), min(rates)


def _torch_rate(dtype: torch.dtype, m: int, k: int, n: int, repeat: int) -> tuple[float, float]:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=generator).to(dtype)
    b = torch.randn(k, n, generator=generator).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    with torch.inference_mode():
        return _time(lambda: torch.matmul(a, b, out=out), 2.0 * m * k * n, repeat)


def _ort_int8_rate(m: int, k: int, n: int, repeat: int) -> tuple[float, float] | None:
    """uint8 activations x int8 weights (a constant, as a quantized model's are) -> int32."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    weights = rng.integers(-128, 128, size=(k, n), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])],
        [numpy_helper.from_array(weights, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    return _time(lambda: session.run(None, {"a": a}), 2.0 * m * k * n, repeat)


def _int_mm_rate(m: int, k: int, n: int, repeat: int) -> tuple[float, float] | None:
    if not hasattr(torch, "_int_mm"):
        return None
    a = torch.randint(-128, 128, (m, k), dtype=torch.int8)
    b = torch.randint(-128, 128, (k, n), dtype=torch.int8)
    try:
        torch._int_mm(a[:32, :32].contiguous(), b[:32, :32].contiguous())
    except RuntimeError:
        return None
    return _time(lambda: torch._int_mm(a, b), 2.0 * m * k * n, repeat)


def measure(shapes: tuple[tuple[str, int, int, int], ...] = SHAPES, repeat: int = 5,
            int_mm: bool = False) -> Iterator[Rate]:
    """Every shape in every precision this machine runs (bf16 only where it is native), as each is timed."""
    from cnnviewer.core.models import bf16_supported

    for label, m, k, n in shapes:
        yield Rate("fp32", label, *_torch_rate(torch.float32, m, k, n, repeat), "torch")
        if bf16_supported():
            yield Rate("bf16", label, *_torch_rate(torch.bfloat16, m, k, n, repeat), "torch")
        int8 = _ort_int8_rate(m, k, n, repeat)
        if int8 is not None:
            yield Rate("int8", label, *int8, "onnxruntime MatMulInteger")
    if int_mm:
        plain = _int_mm_rate(1024, 1024, 1024, repeat)
        if plain is not None:
            yield Rate("int8", "1024x1024x1024", *plain, "torch._int_mm")


def measure_ceiling(repeat: int = 3) -> dict[str, float]:
    """The ceiling per precision ("fp32", "bf16", "int8"): the best rate of any shape, in G(FL)OP/s."""
    ceiling: dict[str, float] = {}
    for rate in measure(repeat=repeat):
        ceiling[rate.precision] = max(rate.best, ceiling.get(rate.precision, 0.0))
    return ceiling


def precision_of(label: str) -> str:
    """The arithmetic a way's label runs in: "bf16" -> bf16, "int8..." -> int8, the rest FP32."""
    label = label.lower()
    return "bf16" if "bf16" in label else "int8" if "int8" in label else "fp32"


def fraction_of_ceiling(images_per_s: float, gmacs: float, ceiling: float) -> float:
    """The share of the ceiling a way reaches: images/s x GFLOP per image (2 x GMACs) / ceiling GFLOP/s."""
    return images_per_s * 2.0 * gmacs / ceiling if ceiling > 0 else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per shape and precision (best and range)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'shape':<38}{'precision':>10}{'best G(FL)OP/s':>16}{'range':>18}  engine")
    ceiling: dict[str, float] = {}
    for rate in measure(repeat=args.repeat, int_mm=True):
        print(f"{rate.shape:<38}{rate.precision:>10}{rate.best:>16.1f}{f'{rate.worst:.1f}-{rate.best:.1f}':>18}"
              f"  {rate.engine}", flush=True)
        if rate.engine != "torch._int_mm":  # a plain loop on CPUs: not what a quantized model runs
            ceiling[rate.precision] = max(rate.best, ceiling.get(rate.precision, 0.0))
    base = ceiling.get("fp32", 0.0)
    print("ceiling: " + ", ".join(f"{p} {ceiling[p]:.1f} G(FL)OP/s ({ceiling[p] / base:.2f}x fp32)"
                                  for p in PRECISIONS if p in ceiling))
    return 0


if __name__ == "__main__":
    sys.exit(main())
