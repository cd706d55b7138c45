"""Which images calibrate an int8 model: a sample of the benchmarked folder or the user's own, never the scored ones."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnviewer.core.errors import CnnviewerError
from cnnviewer.core.images import is_image_path
from cnnviewer.core.quantize import MIN_CALIBRATION_IMAGES, CalibrationError
from cnnviewer.core.ways import INT8, RunAs

#: A benchmark folder gives this share of its images to calibration, at least MIN_CALIBRATION_IMAGES ...
CALIBRATION_SHARE = 0.10
#: ... and at most this many: MinMax ranges settle within a few dozen images, and each costs time.
MAX_CALIBRATION_IMAGES = 64


class CalibrationOverlapError(CnnviewerError):
    """A calibration image that is also scored: the accuracy figure would not be honest."""


@dataclass(frozen=True)
class CalibrationSet:
    """What calibrated an int8 model, for the report: how many images, from where; never scored."""

    paths: tuple[str, ...]
    source: str  # the folder they came from
    sampled: bool  # True: a sample of the benchmarked folder; False: a folder the user chose

    @property
    def description(self) -> str:
        """'int8 calibrated on 10 images sampled from FOLDER (not scored)'."""
        how = "sampled from" if self.sampled else "from"
        return f"int8 calibrated on {len(self.paths)} images {how} {self.source} (not scored)"


def calibration_count(total: int) -> int:
    """How many of ``total`` benchmark images calibrate: 10 %, but at least MIN_CALIBRATION_IMAGES and at
    most 64 (100 images: 16 calibrate, 84 are scored). A folder too small to give that many and keep
    three quarters for scoring gives a quarter, and quantizing then asks for a folder of its own."""
    if total >= 4 * MIN_CALIBRATION_IMAGES:
        return min(MAX_CALIBRATION_IMAGES, max(MIN_CALIBRATION_IMAGES, int(total * CALIBRATION_SHARE)))
    return total // 4


def calibration_split(paths: Sequence[str | os.PathLike[str]], count: int | None = None,
                      seed: int = 0) -> tuple[list[str], list[str]]:
    """Split a benchmark's images into (calibration, scored): a deterministic sample of ``count``
    (default calibration_count) for calibration, the rest, in their order, scored. No image is in both.

    The sample is the same for the same set of files whatever order they are given in.
    """
    names = list(dict.fromkeys(os.fspath(p) for p in paths))
    count = calibration_count(len(names)) if count is None else max(0, min(count, len(names) - 1))
    chosen = set(random.Random(seed).sample(sorted(names), count))
    return sorted(chosen), [name for name in names if name not in chosen]


def folder_images(folder: str | os.PathLike[str]) -> CalibrationSet:
    """The image files of a folder the user chose for calibration (its sub-folders too), sorted."""
    root = Path(os.fspath(folder))
    if not root.is_dir():
        raise CnnviewerError(f"{root}: no such folder to calibrate int8 with; choose a folder of photos.")
    found = sorted(str(p) for p in root.rglob("*") if p.is_file() and is_image_path(p))
    return CalibrationSet(tuple(found), str(root), sampled=False)


def _content_hash(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:  # a file that cannot be read is skipped (and counted) when calibration loads it
        return None


def check_no_overlap(calibration: Sequence[str | os.PathLike[str]], scored: Sequence[str | os.PathLike[str]]) -> None:
    """Refuse calibration images that are also scored: the same file (resolved path) or the same content."""
    scored_paths = {Path(os.fspath(p)).resolve(): os.fspath(p) for p in scored}
    for path in calibration:
        if Path(os.fspath(path)).resolve() in scored_paths:
            raise CalibrationOverlapError(
                f"{os.fspath(path)}: this calibration image is also one of the images scored; calibrate on "
                "other images so the accuracy is measured on images the int8 model was not fitted to.")
    # Sizes first: only files of equal size can have equal content, so most files are never read.
    sizes: dict[int, list[str]] = {}
    for name in scored_paths.values():
        try:
            sizes.setdefault(os.stat(name).st_size, []).append(name)
        except OSError:
            continue
    hashes: dict[str, str] = {}
    for path in calibration:
        name = os.fspath(path)
        try:
            same_size = sizes.get(os.stat(name).st_size, [])
        except OSError:
            continue
        digest = _content_hash(name) if same_size else None
        if digest is None:
            continue
        for other in same_size:
            if other not in hashes:
                hashes[other] = _content_hash(other) or ""
            if hashes[other] == digest:
                raise CalibrationOverlapError(
                    f"{name}: this calibration image has the same content as {other}, one of the images scored; "
                    "calibrate on other images so the accuracy is measured on images the int8 model was not "
                    "fitted to.")


def for_benchmark(paths: Sequence[str | os.PathLike[str]], source: str, calibrate_folder: str | None = None,
                  ) -> tuple[CalibrationSet, list[str]]:
    """The calibration set and the images to score for a benchmark of ``paths`` (from folder ``source``).

    With ``calibrate_folder`` (the user's choice) every image is scored and none may be in that folder;
    without it, a sample of ``paths`` calibrates and is left out of the scoring.
    """
    names = [os.fspath(p) for p in paths]
    if calibrate_folder:
        chosen = folder_images(calibrate_folder)
        check_no_overlap(chosen.paths, names)
        return chosen, names
    calibration, scored = calibration_split(names)
    if len(calibration) < MIN_CALIBRATION_IMAGES:  # refused before any model runs, not after a failed quantization
        raise CalibrationError(
            f"int8 needs {MIN_CALIBRATION_IMAGES} calibration photos that are then not scored, and {source} has "
            f"{len(names)} images: too few to set a sample aside (that takes {4 * MIN_CALIBRATION_IMAGES} or more).",
            cli_hint=f"Use --calibrate FOLDER with {MIN_CALIBRATION_IMAGES} or more other photos.",
            gui_hint=f"Choose an int8 calibration folder with {MIN_CALIBRATION_IMAGES} or more other photos "
                     "(Models > Choose int8 calibration folder…).")
    return CalibrationSet(tuple(calibration), source, sampled=True), scored


def benchmark_calibration(ways: Sequence[RunAs], paths: Sequence[str | os.PathLike[str]], source: str,
                          calibrate_folder: str | None = None) -> tuple[CalibrationSet | None, list[str]]:
    """For a benchmark of ``paths`` (from folder ``source``) run ``ways``: (int8's calibration set, the images
    EVERY way scores, so the ways are compared on the same images). Without int8 among ``ways``: (None, all
    of ``paths``); with it, as for_benchmark (a sample left out of scoring, or ``calibrate_folder``'s images)."""
    if INT8 not in ways:
        return None, [os.fspath(p) for p in paths]
    return for_benchmark(paths, source, calibrate_folder)
