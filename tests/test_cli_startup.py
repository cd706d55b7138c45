"""Start-up: a second `cnnviewer classify` of Lite0 run as onnxruntime never imports torch, and agrees with fp32."""

from __future__ import annotations

import json
import subprocess
import sys

from cnnviewer.core import auto
from cnnviewer.core.paths import sample_photos
from tests.helpers import cli, run

# The CLI's own entry point, then whether torch (or torchvision) was imported by it.
PROBE = ("import sys; from cnnviewer.cli import main; code = main(sys.argv[1:]); "
         "print('IMPORTED', 'torch' in sys.modules, 'torchvision' in sys.modules, file=sys.stderr); "
         "sys.exit(code)")


def _in_fresh_process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300)


def _top5(stdout: str) -> list[list[int]]:
    return [[p["index"] for p in row["predictions"]] for row in json.loads(stdout)]


def test_the_default_classify_chooses_once_then_starts_without_torch_when_onnxruntime_was_chosen():
    photos = [str(p) for p in sample_photos()]
    first = run("classify", *photos, "--model", "efficientnet_lite0", "--format", "json")
    assert first.returncode == 0, first.stderr
    assert "Choosing the fastest way for efficientnet_lite0 on this machine (once; cached)..." in first.stderr
    (record,) = [r for r in json.loads(auto.cache_file().read_text())["records"].values()]
    chosen = record["chosen"]
    assert {row["way"] for row in json.loads(first.stdout)} == {f"auto: {chosen}"}
    second = _in_fresh_process("classify", *photos, "--model", "efficientnet_lite0", "--format", "json")
    assert second.returncode == 0, second.stderr
    assert "Choosing" not in second.stderr  # measured once: the cache answered
    assert "IMPORTED False False" in second.stderr or chosen != "onnxruntime"
    fp32 = cli("classify", *photos, "--model", "efficientnet_lite0", "--format", "json", "--run-as", "fp32")
    assert _top5(second.stdout) == _top5(first.stdout) == _top5(fp32.stdout)
    assert {row["way"] for row in json.loads(fp32.stdout)} == {"fp32"}


def test_run_as_onnxruntime_starts_without_torch_once_the_export_is_cached():
    photo = str(sample_photos()[0])
    fp32 = cli("classify", photo, "--model", "efficientnet_lite0", "--run-as", "fp32")
    first = cli("classify", photo, "--model", "efficientnet_lite0", "--run-as", "onnxruntime")  # exports, caches
    second = _in_fresh_process("classify", photo, "--model", "efficientnet_lite0", "--run-as", "onnxruntime")
    assert second.returncode == 0 and "IMPORTED False False" in second.stderr, second.stderr
    # The same table as the path that loads torch, and the same classes and order as fp32.
    assert second.stdout == first.stdout
    assert "cpu, onnxruntime)" in second.stdout.splitlines()[0]
    ranks = [[line.split()[1] for line in out.splitlines()[3:8]] for out in (second.stdout, fp32.stdout)]
    assert ranks[0] == ranks[1] and len(ranks[0]) == 5


def test_a_torchvision_model_run_as_onnxruntime_starts_without_torch_or_torchvision_once_cached():
    import torch

    from cnnviewer.core.catalog import checkpoints_dir, get_entry
    from cnnviewer.core.models import build_for_weights

    entry = get_entry("resnet50")
    torch.manual_seed(0)  # random weights under torchvision's name: this test is about start-up, not accuracy
    checkpoints_dir().mkdir(parents=True, exist_ok=True)
    torch.save(build_for_weights(entry).state_dict(), checkpoints_dir() / entry.weights_filename)
    photos = [str(p) for p in sample_photos()]
    json_args = ("--model", "resnet50", "--format", "json")
    fp32 = cli("classify", *photos, *json_args, "--run-as", "fp32")
    assert fp32.returncode == 0, fp32.stderr
    # A user's first run: loads torch, exports and keeps the export and the catalog snapshot.
    first = run("classify", *photos, *json_args, "--run-as", "onnxruntime")
    assert first.returncode == 0, first.stderr
    second = _in_fresh_process("classify", *photos, *json_args, "--run-as", "onnxruntime")
    assert second.returncode == 0 and "IMPORTED False False" in second.stderr, second.stderr
    assert _top5(second.stdout) == _top5(first.stdout) == _top5(fp32.stdout)
    assert {row["way"] for row in json.loads(second.stdout)} == {"onnxruntime"}
    table = _in_fresh_process("classify", photos[0], "--model", "resnet50", "--run-as", "onnxruntime")
    assert table.returncode == 0 and "IMPORTED False False" in table.stderr, table.stderr
    assert table.stdout.startswith("Model: resnet50 (ResNet50, ResNet50_Weights.IMAGENET1K_V2, cached weights, cpu, "
                                   "onnxruntime)")


def test_an_unknown_model_is_bad_usage_on_the_fast_path_too():
    photo = str(sample_photos()[0])
    for way in ("auto", "onnxruntime"):
        done = cli("classify", photo, "--model", "frobnicator", "--run-as", way)
        assert done.returncode == 2 and "Unknown model 'frobnicator'" in done.stderr, done.stderr
        assert "cnnviewer models --all" in done.stderr  # the usual path's sentence, with its hint
