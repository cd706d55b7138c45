"""Top-1 of each "Run as" choice against FP32 on real photos, with the embedded pretrained models.

    python benchmarks/fast_path_accuracy.py [--images ../shared/datasets/imagenet-val-100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnviewer.core.datasets import load_labelled_folder  # noqa: E402
from cnnviewer.core.catalog import get_entry  # noqa: E402
from cnnviewer.core.engines import onnxruntime_available  # noqa: E402
from cnnviewer.core.inference import Classifier  # noqa: E402
from cnnviewer.core.models import bf16_supported, load_model  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "datasets" / "imagenet-val-100"))
    args = parser.parse_args()
    dataset = load_labelled_folder(args.images)
    paths, truth = [i.path for i in dataset.images], [i.index for i in dataset.images]
    choices = {"fp32": ("fp32", "torch")}
    if bf16_supported():
        choices["bf16"] = ("bf16", "torch")
    if onnxruntime_available():
        choices["onnxruntime"] = ("fp32", "onnxruntime")
    print(f"{len(paths)} images from {args.images}; top-1 % (change against fp32, answers that differ)")
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        tops = {}
        for label, (precision, engine) in choices.items():
            classifier = Classifier(load_model(get_entry(name), precision=precision, channels_last=True,
                                               engine=engine))
            tops[label] = [r.predictions[0].index for r in classifier.classify_files(paths, batch_size=16)]
        base = sum(a == b for a, b in zip(tops["fp32"], truth)) * 100 / len(paths)
        cells = []
        for label, top in tops.items():
            accuracy = sum(a == b for a, b in zip(top, truth)) * 100 / len(paths)
            differ = sum(a != b for a, b in zip(top, tops["fp32"]))
            cells.append(f"{label} {accuracy:.1f} ({accuracy - base:+.1f}, {differ})")
        print(f"{name:<20}" + "   ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
