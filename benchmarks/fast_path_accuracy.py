"""Top-1 of each "Run as" choice against FP32 on real photos, with the embedded pretrained models.

    python benchmarks/fast_path_accuracy.py [--images ../shared/datasets/imagenet-val-100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnviewer.core.catalog import get_entry
from cnnviewer.core.datasets import load_labelled_folder
from cnnviewer.core.engines import onnxruntime_available
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import bf16_supported, load_model
from cnnviewer.core.ways import way_of


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "datasets" / "imagenet-val-100"))
    args = parser.parse_args()
    dataset = load_labelled_folder(args.images)
    paths, truth = [i.path for i in dataset.images], [i.index for i in dataset.images]
    # label: (precision, engine, cnnviewer's own changes: BatchNorm folded, NHWC)
    choices = {"plain fp32": ("fp32", "torch", False), "fp32": ("fp32", "torch", True)}
    if bf16_supported():
        choices["bf16"] = ("bf16", "torch", True)
    if onnxruntime_available():
        choices["onnxruntime"] = ("fp32", "onnxruntime", True)
    print(f"{len(paths)} images from {args.images}; top-1 % (change against plain fp32 eager, top-1 answers "
          "that differ, top-5 lists that differ)")
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        tops = {}
        for label, (precision, engine, own) in choices.items():
            classifier = Classifier(load_model(get_entry(name), way=way_of(precision, engine), channels_last=own,
                                               fold=own), fast_decode=False)
            tops[label] = [[p.index for p in r.predictions] for r in classifier.classify_files(paths, batch_size=16)]
        plain = tops["plain fp32"]
        base = sum(a[0] == b for a, b in zip(plain, truth, strict=True)) * 100 / len(paths)
        cells = []
        for label, top in tops.items():
            accuracy = sum(a[0] == b for a, b in zip(top, truth, strict=True)) * 100 / len(paths)
            differ = sum(a[0] != b[0] for a, b in zip(top, plain, strict=True))
            differ5 = sum(a != b for a, b in zip(top, plain, strict=True))
            cells.append(f"{label} {accuracy:.1f} ({accuracy - base:+.1f}, {differ}, {differ5})")
        print(f"{name:<20}" + "   ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
