"""Decoding: large JPEGs at reduced size (Pillow's draft) against a full decode, in one process.

    python benchmarks/decode.py [--images ../shared/datasets/imagenet-samples-88]

Prints the time per image of both ways for the JPEGs of 1000 px and more, their ratio, and how
many of all the images keep the embedded EfficientNet-Lite0's top-1 when decoded at reduced size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnviewer.core.catalog import get_entry
from cnnviewer.core.images import is_image_path, load_image
from cnnviewer.core.inference import Classifier
from cnnviewer.core.models import load_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "datasets" / "imagenet-samples-88"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(str(p) for p in Path(args.images).rglob("*") if is_image_path(p.name))
    large = [p for p in paths if max(Image.open(p).size) >= 1000 and Image.open(p).format == "JPEG"]
    classifier = Classifier(load_model(get_entry("efficientnet_lite0")))
    side = classifier.decode_min_side

    def per_image(min_side, preprocess=False):
        started = time.perf_counter()
        for _ in range(args.repeat):
            for path in large:
                image = load_image(path, min_side=min_side)
                if preprocess:
                    classifier.preprocess(image)
        return (time.perf_counter() - started) / (args.repeat * len(large)) * 1000

    def eighth_scale():
        """libjpeg's smallest DCT scale: entropy decoding is left, which no scaled decode can skip."""
        started = time.perf_counter()
        for _ in range(args.repeat):
            for path in large:
                with Image.open(path) as image:
                    image.draft("RGB", (image.width // 8, image.height // 8))
                    image.load()
        return (time.perf_counter() - started) / (args.repeat * len(large)) * 1000

    def line(label):
        full_ms, reduced_ms, floor_ms = per_image(None), per_image(side), eighth_scale()
        full_pre, reduced_pre = per_image(None, True), per_image(side, True)
        print(f"{label}: decode {full_ms:.1f} -> {reduced_ms:.1f} ms/image ({full_ms / reduced_ms:.1f}x; "
              f"1/8 scale, the limit of scaled decoding: {floor_ms:.1f} ms, {full_ms / floor_ms:.1f}x); "
              f"decode + preprocessing {full_pre:.1f} -> {reduced_pre:.1f} ms/image ({full_pre / reduced_pre:.1f}x)")

    print(f"full size against reduced size (short side >= {side}, what EfficientNet-Lite0's resize needs):")
    line(f"{len(large)} JPEGs of 1000 px or more among the {len(paths)} images of {Path(args.images).name}")
    # Few real photos here are that large, so the same photos are also saved at camera sizes.
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="cnnviewer-decode-"))
    for size in (1600, 3000):
        large = []
        for path in paths[:30]:
            with Image.open(path) as image:
                scale = size / max(image.size)
                big = image.convert("RGB").resize((int(image.width * scale), int(image.height * scale)))
            target = folder / f"{size}-{Path(path).stem}.jpg"
            big.save(target, quality=90)
            large.append(str(target))
        line(f"30 of these photos saved at {size} px")
    whole = Classifier(classifier.loaded, fast_decode=False)
    full = [r.predictions[0].index for r in whole.classify_files(paths, batch_size=16)]
    reduced = [r.predictions[0].index for r in classifier.classify_files(paths, batch_size=16)]
    same = sum(a == b for a, b in zip(full, reduced, strict=True))
    print(f"top-1 unchanged on {same} of {len(paths)} images ({100 * same / len(paths):.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
