"""Start-up and short jobs as whole processes: `cnnviewer classify` by default (auto) against `--run-as fp32`.

    python benchmarks/startup.py [--repeats 5] [--images ../shared/datasets/imagenet-val-100] [--quick]

Each figure is a whole process (python start to exit), the two sides alternated, repeated; medians
and ranges are printed, and the ratios. Caches (the auto choice, the ONNX export) live in a
temporary folder and are warmed by one untimed run of each command first, as a second run by a user
finds them. Measured:

1. one photo with EfficientNet-Lite0: the default (auto) against `--run-as fp32` (the old default),
   and a breakdown of the default (python start, imports, catalog, resolve, session load, decode, run);
2. the 100 validation photos with Lite0: default against `--run-as fp32` (target 2.5x);
3. the lab-report trio (ResNet50, GoogLeNet, Inception V3, random weights from _random_weights.py):
   `cnnviewer classify` of the 100 photos by default (auto, as a user runs it) against the lab report's
   loop, each a whole process, with the way auto chose for each model. With the caches warm (the catalog
   snapshot, auto's choice, the ONNX export) a model auto runs as onnxruntime starts without torch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHOTO = ROOT / "resources" / "samples" / "chelsea.jpg"
TRIO = ("resnet50", "googlenet", "inception_v3")

# The lab report's evaluate() as its own program: torchvision's preset transform, one image at a time,
# autograd on, softmax, top-5.
LAB_LOOP = """
import sys, torch, torchvision
from PIL import Image
from torchvision.models import get_model, get_model_weights
name, files = sys.argv[1], sys.argv[2:]
extra = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
model = get_model(name, weights=None, **extra).eval()
transform = get_model_weights(name).DEFAULT.transforms()
for path in files:
    batch = transform(Image.open(path).convert("RGB")).unsqueeze(0)
    prediction = model(batch).squeeze().softmax(0)
    torch.topk(prediction.flatten(), 5).indices.tolist()
"""

# The default classify of one photo, step by step in one process, with what each step took.
BREAKDOWN = """
import sys, time
t0 = time.perf_counter()
import numpy, onnxruntime, PIL.Image
from cnnviewer import cli
from cnnviewer.core import auto, onnx_cache, onnx_classify
t1 = time.perf_counter()
from cnnviewer.core.catalog import get_entry
entry = get_entry("efficientnet_lite0")
path = entry.weights_path()
t2 = time.perf_counter()
from cnnviewer.core.weights import file_sha256
sha = file_sha256(path)
record = auto.cached_record(entry.name, sha, "cpu")
t3 = time.perf_counter()
export = onnx_cache.load_export(entry.name, sha)
classifier = onnx_classify.OnnxClassifier(entry.name, export, auto=True)
t4 = time.perf_counter()
decoded = classifier.decode(sys.argv[1])
t5 = time.perf_counter()
classifier.predict_batch(decoded.array[None])
t6 = time.perf_counter()
print(record.chosen, *(f"{(b - a) * 1000:.0f}" for a, b in ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6))))
"""


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])}... failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return seconds


def alternate(sides: dict[str, list[str]], env: dict[str, str], repeats: int) -> dict[str, list[float]]:
    """Each side once untimed (warms the caches), then ``repeats`` rounds, the sides alternated."""
    for command in sides.values():
        timed(command, env)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, command in sides.items():
            times[name].append(timed(command, env))
    return times


def show(times: dict[str, list[float]], baseline: str, target: float | None = None) -> None:
    for name, values in times.items():
        print(f"  {name:<44} median {statistics.median(values):7.2f} s  range {min(values):.2f}-{max(values):.2f} s")
    base = statistics.median(times[baseline])
    for name, values in times.items():
        if name != baseline and not name.startswith("python"):  # python's own start is shown, not compared
            ratio = base / statistics.median(values)
            goal = f" (target {target:.1f}x)" if target else ""
            print(f"  {baseline} / {name}: {ratio:.2f}x{goal}")


def auto_choices(cache: str) -> dict[str, str]:
    """model -> the way auto chose, from the cache folder the runs used."""
    try:
        records = json.loads((Path(cache) / "auto-ways.json").read_text())["records"].values()
        return {record["key"]["model"]: record["chosen"] for record in records}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "datasets" / "imagenet-val-100"))
    parser.add_argument("--quick", action="store_true", help="one repeat, 10 photos, only ResNet50 of the trio")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    photos = sorted(str(p) for p in Path(args.images).rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    photos = photos[:10] if args.quick else photos
    env = dict(os.environ, CNNVIEWER_CACHE_DIR=tempfile.mkdtemp(prefix="cnnviewer-startup-cache-"),
               CNNVIEWER_CONFIG_DIR=tempfile.mkdtemp(prefix="cnnviewer-startup-config-"))
    cnnviewer = [sys.executable, "-m", "cnnviewer", "classify"]
    lite = ["--model", "efficientnet_lite0"]

    print(f"1. One photo ({PHOTO.name}), EfficientNet-Lite0, whole processes, {repeats} alternated rounds")
    show(alternate({"default (auto)": [*cnnviewer, str(PHOTO), *lite],
                    "--run-as fp32 (the old default)": [*cnnviewer, str(PHOTO), *lite, "--run-as", "fp32"],
                    "python -c pass": [sys.executable, "-c", "pass"]}, env, repeats),
         "--run-as fp32 (the old default)", target=None)
    runs = [subprocess.run([sys.executable, "-c", BREAKDOWN, str(PHOTO)], env=env, capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(max(3, repeats))]
    steps = ("imports", "catalog", "resolve (cached auto)", "session load", "decode", "run")
    print(f"  breakdown of the default (median of {len(runs)}, ms; chosen way: {runs[0][0]}; plus python start "
          "above):")
    print("   " + ", ".join(f"{step} {statistics.median(float(r[i + 1]) for r in runs):.0f}"
                            for i, step in enumerate(steps)))

    print(f"\n2. {len(photos)} photos, EfficientNet-Lite0: default against --run-as fp32")
    show(alternate({"default (auto)": [*cnnviewer, *photos, *lite],
                    "--run-as fp32": [*cnnviewer, *photos, *lite, "--run-as", "fp32"]}, env, repeats),
         "--run-as fp32", target=2.5)

    from benchmarks._random_weights import random_weights_cache

    trio = TRIO[:1] if args.quick else TRIO
    random_weights_cache(list(trio))  # sets TORCH_HOME for this process and its children
    env["TORCH_HOME"] = os.environ["TORCH_HOME"]
    print(f"\n3. {len(photos)} photos, lab trio (random weights), whole processes: cnnviewer classify (default) "
          "against the lab report's loop")
    totals: dict[str, list[float]] = {"cnnviewer classify": [], "lab loop": []}
    for model in trio:
        times = alternate({"cnnviewer classify": [*cnnviewer, *photos, "--model", model],
                           "lab loop": [sys.executable, "-c", LAB_LOOP, model, *photos]}, env, repeats)
        print(f" {model} (auto: {auto_choices(env['CNNVIEWER_CACHE_DIR']).get(model, '?')})")
        show(times, "lab loop")
        for name, values in times.items():
            totals[name].append(statistics.median(values))
    print(f"  trio total: cnnviewer {sum(totals['cnnviewer classify']):.1f} s, lab loop {sum(totals['lab loop']):.1f} s: "
          f"{sum(totals['lab loop']) / sum(totals['cnnviewer classify']):.2f}x (target 2.0x)")


if __name__ == "__main__":
    main()
