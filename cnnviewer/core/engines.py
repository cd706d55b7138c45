"""Inference engines besides eager torch: ONNX Runtime runs the same FP32 weights faster on CPUs."""

from __future__ import annotations

import io
import logging
import os
import warnings

import torch
from torch import nn

from cnnviewer.core.errors import CnnviewerError

log = logging.getLogger(__name__)


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:  # an optional extra: without it only the torch engine is offered
        log.info("onnxruntime engine unavailable: %s", exc)
        return False
    return True


class OnnxRunner:
    """The module exported to ONNX once (at load), then run by ONNX Runtime's CPU provider in FP32."""

    def __init__(self, name: str, module: nn.Module, input_size: int, threads: int | None = None):
        if not onnxruntime_available():
            raise CnnviewerError("ONNX Runtime is not installed: install the packages onnxruntime and onnx "
                                 "(pip install onnxruntime onnx), or choose another way of running.",
                                 cli_hint="Or use --run-as fp32.", gui_hint="Or pick fp32 under Run as.")
        import onnxruntime as ort

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
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads() or (os.cpu_count() or 1)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        self.threads = options.intra_op_num_threads

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {"x": array})[0])
