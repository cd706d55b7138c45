"""Hostile images: the time and memory one load_image call takes on each, in a fresh interpreter.

    python benchmarks/hostile_files.py [--size 13000] [--scans 20000] [--loader OTHER_IMAGES_PY]

Builds each file in a temporary folder (a 16-bit PNG, a float TIFF and an RGBA PNG of SIZE x SIZE,
also at the largest size the pixel limit lets through; a progressive JPEG with SCANS scans), loads
it in a child process and prints its peak resident memory above a child that only imports, its wall
and processor time, and what happened. ``--loader`` measures another version of
cnnviewer/core/images.py (say, an older one from git) in place of this checkout's.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnviewer.core.images import MAX_MEGAPIXELS
from tests.badfiles import MEASURE, png_16bit_grey, png_rgba, progressive_jpeg_with_scans, tiff_float

# The tests' measuring child, after swapping in another version of the loader when one is named
# (argv[1], "" for this checkout's), which it takes off argv so the file is argv[1] again.
CHILD = """
import importlib.util, sys
swap = sys.argv.pop(1)
if swap:
    spec = importlib.util.spec_from_file_location("cnnviewer.core.images", swap)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cnnviewer.core.images"] = module
    spec.loader.exec_module(module)
""" + MEASURE


def measure(loader: str, path: Path | None, timeout: float) -> dict:
    command = [sys.executable, "-c", CHILD, loader] + ([str(path)] if path else [])
    try:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=str(ROOT), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"peak_mb": math.nan, "wall_s": timeout, "cpu_s": math.nan, "outcome": f"killed after {timeout:.0f} s"}
    if proc.returncode:
        return {"peak_mb": math.nan, "wall_s": math.nan, "cpu_s": math.nan,
                "outcome": f"crashed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=13000, help="side of the square PNGs and TIFF")
    parser.add_argument("--scans", type=int, default=20000, help="scans of the progressive JPEG")
    parser.add_argument("--loader", default="", help="another images.py to measure instead")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    side = int(math.sqrt(MAX_MEGAPIXELS * 1_000_000)) - 1  # the largest square the limit lets through
    cases = {
        f"16-bit PNG {args.size}^2": ("png", png_16bit_grey(args.size, args.size)),
        f"float TIFF {args.size}^2": ("tif", tiff_float(args.size, args.size)),
        f"RGBA PNG {args.size}^2": ("png", png_rgba(args.size, args.size)),
        f"16-bit PNG {side}^2": ("png", png_16bit_grey(side, side)),
        f"float TIFF {side}^2": ("tif", tiff_float(side, side)),
        f"RGBA PNG {side}^2": ("png", png_rgba(side, side)),
        f"JPEG, {args.scans} scans": ("jpg", progressive_jpeg_with_scans(args.scans)),
    }
    baseline = measure(args.loader, None, args.timeout)["peak_mb"]
    print(f"baseline (imports only): {baseline:.0f} MB")
    print(f"{'file':28} {'KB':>6} {'MB above':>9} {'wall s':>7} {'cpu s':>7}  outcome")
    with tempfile.TemporaryDirectory(prefix="cnnviewer-hostile-") as folder:
        for name, (suffix, data) in cases.items():
            path = Path(folder) / f"hostile.{suffix}"
            path.write_bytes(data)
            result = measure(args.loader, path, args.timeout)
            print(f"{name:28} {len(data) / 1024:6.0f} {result['peak_mb'] - baseline:9.0f} {result['wall_s']:7.2f} "
                  f"{result['cpu_s']:7.2f}  {result['outcome'][:90]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
