"""The CUDA path: the same answers as the CPU on real photos, GPU memory in the report, Grad-CAM on the GPU.

Skipped where torch sees no CUDA device (CI has none); run on a machine with a GPU with
``pytest tests/core/test_cuda.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviewer.core.benchmark import BenchmarkConfig, run_benchmark
from cnnviewer.core.catalog import get_entry
from cnnviewer.core.datasets import load_labelled_folder
from cnnviewer.core.explain import grad_cam
from cnnviewer.core.images import load_image
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import available_devices, build_architecture, load_model, prepare_module
from cnnviewer.core.report import markdown
from cnnviewer.core.ways import BF16, parse_way
from tests.helpers import PHOTOS_13, VAL_100, labelled_files, run, top1_accuracy
from tests.helpers import top5_indices as top5

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device here")


@pytest.fixture(scope="module")
def val_100():
    return labelled_files("imagenet-val-100")


@pytest.fixture(scope="module")
def cpu(val_100):
    """Plain FP32 eager on the CPU: the answers the GPU must give."""
    return top5(Classifier(load_model(get_entry("efficientnet_lite0"), fold=False)), val_100)


def test_the_gpu_is_offered():
    assert "cuda" in available_devices()


def test_fp32_on_the_gpu_gives_the_cpus_answers(val_100, cpu):
    loaded = load_model(get_entry("efficientnet_lite0"), "cuda", channels_last=True)
    assert loaded.device.type == "cuda" and next(loaded.module.parameters()).is_cuda
    gpu = top5(Classifier(loaded), val_100)
    # cuDNN may use TF32 for FP32 convolutions, as plain torch does on this GPU: a near tie can flip.
    assert sum(a[0] == b[0] for a, b in zip(gpu, cpu, strict=True)) >= 99
    assert abs(top1_accuracy(gpu, val_100) - top1_accuracy(cpu, val_100)) <= 1.0


def test_bf16_on_the_gpu_is_within_one_point(val_100, cpu):
    gpu = top5(Classifier(load_model(get_entry("efficientnet_lite0"), "cuda", BF16, channels_last=True)), val_100)
    assert abs(top1_accuracy(gpu, val_100) - top1_accuracy(cpu, val_100)) <= 1.0
    assert sum(a[0] == b[0] for a, b in zip(gpu, cpu, strict=True)) >= 95


@pytest.mark.parametrize("name", ["resnet50", "googlenet", "inception_v3"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_lab_reports_models_run_on_the_gpu(name, precision):
    """Random weights: shapes, finite scores, and FP32 logits close to the CPU's."""
    entry = get_entry(name)
    torch.manual_seed(0)
    module = build_architecture(entry)
    reference = build_architecture(entry)
    reference.load_state_dict(module.state_dict())
    batch = torch.rand(4, 3, entry.input_size, entry.input_size)
    with torch.inference_mode():
        expected = reference.eval()(batch)
    classifier = Classifier(prepare_module(entry, module, "cuda", parse_way(precision), channels_last=True))
    logits = classifier.forward(batch).float().cpu()
    assert logits.shape == (4, 1000) and torch.isfinite(logits).all()
    if precision == "fp32":
        assert torch.allclose(logits, expected, atol=0.02 * float(expected.abs().max()))


def test_benchmark_on_the_gpu_records_gpu_memory(tmp_path):
    dataset = load_labelled_folder(VAL_100)
    report = run_benchmark(dataset, BenchmarkConfig(models=("efficientnet_lite0",), device="cuda", batch_size=32))
    result = report.models[0]
    assert result.error is None and result.images == 100 and result.complete
    assert abs(result.top1 - 0.88) <= 0.02 and result.top5 >= 0.96
    assert result.peak_gpu_mb > 10 and result.folded_batchnorms == 49
    assert report.environment["gpu"] == torch.cuda.get_device_name(0)
    text = markdown(report)
    assert "GPU memory peak" in text and torch.cuda.get_device_name(0) in text


def test_grad_cam_on_the_gpu_matches_the_cpu():
    image = load_image(PHOTOS_13 / "polar_bear.jpg")
    on_cpu = grad_cam(Classifier(load_model(get_entry("efficientnet_lite0"))), image, 296)
    on_gpu = grad_cam(Classifier(load_model(get_entry("efficientnet_lite0"), "cuda")), image, 296)
    assert on_gpu.heatmap.shape == on_cpu.heatmap.shape
    assert np.corrcoef(on_gpu.heatmap.ravel(), on_cpu.heatmap.ravel())[0, 1] > 0.98
    assert abs(on_gpu.probability - on_cpu.probability) < 0.01


def test_cli_classifies_on_the_gpu():
    result = run("classify", str(PHOTOS_13 / "polar_bear.jpg"), "--model", "efficientnet_lite0", "--device", "cuda", "-k", "1")
    assert result.returncode == 0, result.stderr
    assert "296" in result.stdout and "cuda" in result.stdout


def test_ways_of_running_on_the_gpu_are_compared():
    from cnnviewer.core.benchmark import against_fp32
    from cnnviewer.core.ways import FP32

    config = BenchmarkConfig(models=("efficientnet_lite0",), device="cuda", batch_size=32, ways=(FP32, BF16))
    report = run_benchmark(load_labelled_folder(VAL_100), config)
    assert [m.name for m in report.models] == ["efficientnet_lite0 (fp32)", "efficientnet_lite0 (bf16)"]
    assert all(m.images == 100 and m.peak_gpu_mb > 0 for m in report.models)
    (row,) = against_fp32(report)
    assert abs(row["change_points"]) <= 1.0 and row["differ"] <= 5
