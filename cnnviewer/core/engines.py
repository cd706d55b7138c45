"""Inference engines besides eager torch: ONNX Runtime runs the same FP32 weights faster on CPUs."""

# torch is imported where it is used: the torch-free classify path (core.onnx_classify) uses this module too.

from __future__ import annotations

import io
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

from cnnviewer.core.errors import CnnviewerError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from cnnviewer.core.catalog import ModelEntry

log = logging.getLogger(__name__)


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:  # an optional extra: without it only the torch engine is offered
        log.info("onnxruntime engine unavailable: %s", exc)
        return False
    return True


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime's options as cnnviewer runs it: all graph optimisations, ``threads`` compute threads
    (None: ONNX Runtime's own choice, one per physical core, as torch's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def export_onnx(name: str, module: nn.Module, input_size: int) -> bytes:
    """The module as an FP32 ONNX graph (input "x" N x 3 x H x W, output "logits"); a sentence when it cannot."""
    import torch

    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on tracing are not for users
            # The stub names only paths for f; the TorchScript exporter (dynamo=False) writes to file objects too.
            torch.onnx.export(module, (torch.zeros(1, 3, input_size, input_size),),
                              buffer,  # type: ignore[arg-type]
                              input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    except Exception as exc:  # some architectures do not export; say so rather than crash
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CnnviewerError(f"{name} cannot run on ONNX Runtime (export failed: {first[:160]}); "
                             "choose another way of running.", cli_hint="Use --run-as fp32.",
                             gui_hint="Pick fp32 under Run as.") from exc
    return buffer.getvalue()


class OnnxRunner:
    """The module's FP32 ONNX export run by ONNX Runtime's CPU provider.

    With ``entry`` and ``weights_sha256`` the export comes from the cache (core.onnx_cache) and is
    made only on a miss (then kept); a cached file ONNX Runtime cannot load is made again.
    """

    def __init__(self, name: str, module: nn.Module, input_size: int, threads: int | None = None, *,
                 entry: ModelEntry | None = None, weights_sha256: str | None = None, folded: bool = True):
        if not onnxruntime_available():
            raise CnnviewerError("ONNX Runtime is not installed: install the packages onnxruntime and onnx "
                                 "(pip install onnxruntime onnx), or choose another way of running.",
                                 cli_hint="Or use --run-as fp32.", gui_hint="Or pick fp32 under Run as.")
        import onnxruntime as ort
        import torch

        from cnnviewer.core import onnx_cache

        options = session_options(threads or torch.get_num_threads() or (os.cpu_count() or 1))
        self.threads: int = options.intra_op_num_threads
        self.cached = False  # whether the export came from the cache
        cached = onnx_cache.load_export(name, weights_sha256, folded) if weights_sha256 else None
        if cached is not None:
            try:
                self.session = ort.InferenceSession(cached.data, options, providers=["CPUExecutionProvider"])
                self.cached = True
                return
            except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types for a bad graph
                log.warning("the cached ONNX export %s does not load (%s); exporting again", cached.path, exc)
                onnx_cache.forget_export(name, weights_sha256 or "", folded)
        data = export_onnx(name, module, input_size)
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        if entry is not None and weights_sha256:
            try:
                onnx_cache.save_export(entry, weights_sha256, data, folded)
            except CnnviewerError as exc:  # a full disk costs the next run an export, nothing more
                log.warning("the ONNX export of %s is not kept: %s", name, exc)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {"x": array})[0])
