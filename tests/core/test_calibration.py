"""Calibration images: a deterministic sample never also scored, and a user's folder that must not hold scored images."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnviewer.core.calibration import (
    CalibrationOverlapError,
    calibration_count,
    calibration_split,
    check_no_overlap,
    folder_images,
    for_benchmark,
)
from cnnviewer.core.errors import CnnviewerError
from tests.helpers import labelled_files

VAL = [str(path) for path, _ in labelled_files("imagenet-val-100")]
SAMPLES = [str(path) for path, _ in labelled_files("imagenet-samples-88")]


def test_split_is_disjoint_deterministic_and_sized() -> None:
    calibration, scored = calibration_split(VAL)
    assert len(calibration) == 16 and len(scored) == 84
    assert not set(calibration) & set(scored)
    assert set(calibration) | set(scored) == set(VAL)
    assert calibration_split(VAL) == (calibration, scored)
    assert calibration_split(list(reversed(VAL)))[0] == calibration  # the same files, the same sample
    assert scored == [p for p in VAL if p not in calibration]  # the scored keep their order
    assert calibration_split(VAL, seed=1)[0] != calibration
    many = [f"/photos/{n:05d}.jpg" for n in range(5000)]
    assert calibration_count(5000) == 64 and len(calibration_split(many)[0]) == 64
    assert calibration_count(300) == 30 and calibration_count(40) == 10 and calibration_count(1) == 0


def test_split_never_puts_an_image_in_both_lists_even_when_named_twice() -> None:
    calibration, scored = calibration_split([*VAL[:70], *VAL[:70]], count=69)
    assert len(calibration) == 69 and scored and not set(calibration) & set(scored)


def test_benchmark_sample_is_left_out_of_the_scoring() -> None:
    chosen, scored = for_benchmark(VAL, "imagenet-val-100")
    assert chosen.sampled and len(chosen.paths) == 16 and len(scored) == 84
    assert not set(chosen.paths) & set(scored)
    assert chosen.description == "int8 calibrated on 16 images sampled from imagenet-val-100 (not scored)"


def test_a_users_folder_calibrates_and_every_image_is_scored() -> None:
    chosen, scored = for_benchmark(VAL, "imagenet-val-100", calibrate_folder=str(Path(SAMPLES[0]).parent))
    assert not chosen.sampled and len(chosen.paths) == 88 and scored == VAL
    assert chosen.description.startswith("int8 calibrated on 88 images from ")


def test_overlap_by_path_is_refused_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "link.JPEG").symlink_to(VAL[3])
    with pytest.raises(CalibrationOverlapError) as raised:
        for_benchmark(VAL, "imagenet-val-100", calibrate_folder=str(folder))
    assert str(raised.value).startswith(f"{folder / 'link.JPEG'}: this calibration image is also one of the images")
    roundabout = str(Path(VAL[5]).parent / ".." / Path(VAL[5]).parent.name / Path(VAL[5]).name)
    with pytest.raises(CalibrationOverlapError, match="is also one of the images scored"):
        check_no_overlap([roundabout], VAL)


def test_overlap_by_content_is_refused_naming_both_files(tmp_path: Path) -> None:
    copy = tmp_path / "renamed.jpg"
    copy.write_bytes(Path(VAL[7]).read_bytes())
    with pytest.raises(CalibrationOverlapError) as raised:
        check_no_overlap([*SAMPLES[:3], copy], VAL)
    assert str(raised.value).startswith(f"{copy}: this calibration image has the same content as {VAL[7]}")
    check_no_overlap(SAMPLES, VAL)  # other photos: no complaint


def test_a_missing_folder_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(CnnviewerError, match=r"nowhere: no such folder to calibrate int8 with"):
        folder_images(tmp_path / "nowhere")
