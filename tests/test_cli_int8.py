"""`--run-as int8 --calibrate FOLDER` on the command line: it runs, says when it calibrates, and refuses overlap."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import cli, labelled_files

CALIBRATION = [path for path, _ in labelled_files("imagenet-samples-88")[:20]]
PHOTO = labelled_files("imagenet-val-100")[0][0]


pytestmark = pytest.mark.usefixtures("int8_cache")  # one quantization of Lite0 for the file


def _classify(*args: str):
    return cli("classify", "--model", "efficientnet_lite0", "--run-as", "int8", *args)


def test_classify_int8_calibrates_once_then_uses_the_cache(int8_home: tuple[Path, Path]):
    _, folder = int8_home
    first = _classify("--calibrate", str(folder), str(PHOTO))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Model: efficientnet_lite0 (") and ", int8)\n" in first.stdout
    assert "Calibrating efficientnet_lite0 for int8 on 20 images (once; cached)..." in first.stderr
    assert f"int8 calibrated on 20 images from {folder}" in first.stderr
    again = _classify("--calibrate", str(folder), "--format", "json", str(PHOTO))
    assert again.returncode == 0, again.stderr
    assert '"way": "int8"' in again.stdout and "Calibrating" not in again.stderr


def test_a_photo_among_the_calibration_images_is_refused_by_name(int8_home: tuple[Path, Path], tmp_path: Path):
    _, folder = int8_home
    inside = folder / CALIBRATION[3].name
    refused = _classify("--calibrate", str(folder), str(PHOTO), str(inside))
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"{inside}: this calibration image is also one of the images" in refused.stderr
    copy = tmp_path / "renamed.jpg"  # the same photo under another name is the same photo
    shutil.copyfile(CALIBRATION[5], copy)
    refused = _classify("--calibrate", str(folder), str(copy))
    assert refused.returncode == 2 and "has the same content as" in refused.stderr and str(copy) in refused.stderr


def test_int8_without_calibrate_says_how_to_give_it():
    result = _classify(str(PHOTO))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        "cnnviewer: error: efficientnet_lite0 runs as int8 only once it is calibrated: choose a folder of 16 or "
        "more photos (not the ones to classify) to measure its activation ranges on. Use --calibrate FOLDER with "
        "16 or more photos.")


def test_calibrate_without_int8_is_refused(int8_home: tuple[Path, Path]):
    _, folder = int8_home
    for command in (["classify", "--model", "efficientnet_lite0", "--run-as", "fp32", str(PHOTO)],
                    ["bench", str(folder.parent), "--run-as", "fp32"]):
        result = cli(*command, "--calibrate", str(folder))
        assert result.returncode == 2 and "--calibrate is for --run-as int8 only" in result.stderr


def test_bench_refuses_a_calibration_folder_inside_the_one_scored(tmp_path: Path):
    scored = tmp_path / "set"
    calibration = scored / "calibration"
    calibration.mkdir(parents=True)
    for path, _ in labelled_files("imagenet-samples-88")[:16]:
        shutil.copyfile(path, calibration / path.name)  # links leading out of the set are not read
    (scored / "labels.csv").write_text("file,label\n" + "".join(
        f"calibration/{path.name},{index}\n" for path, index in labelled_files("imagenet-samples-88")[:16]))
    result = cli("bench", str(scored), "--models", "efficientnet_lite0", "--run-as", "fp32,int8",
                 "--calibrate", str(calibration), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "this calibration image is also one of the images scored" in result.stderr
    assert not (tmp_path / "out").exists()  # refused before the run's folder was made


def test_bench_of_auto_and_int8_scores_the_same_images_none_of_them_calibration(tmp_path: Path):
    import json

    from cnnviewer.core.auto import cached_record
    from cnnviewer.core.catalog import get_entry
    from cnnviewer.core.weights import file_sha256

    folder = labelled_files("imagenet-val-100")[0][0].parent.parent
    out = tmp_path / "run"
    done = cli("bench", str(folder), "--models", "efficientnet_lite0", "--run-as", "auto,int8", "--limit", "64",
               "--rounds", "0", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    calibration = report["environment"]["int8_calibration"]
    assert calibration.startswith("int8 calibrated on 16 images sampled from") and "(not scored)" in calibration
    scored = {row["file"] for row in report["images"]}
    assert len(scored) == 48  # the first 64, less the 16 that calibrated int8
    assert all(set(row["top5"]) == {"efficientnet_lite0 (auto)", "efficientnet_lite0 (int8)"}
               for row in report["images"])  # both ways answered every scored image
    results = {m["name"]: m for m in report["models"]}
    assert set(results) == {"efficientnet_lite0 (auto)", "efficientnet_lite0 (int8)"}
    assert all(m["images"] == 48 and m["error"] is None for m in results.values())
    auto = results["efficientnet_lite0 (auto)"]
    entry = get_entry("efficientnet_lite0")
    record = cached_record(entry.name, file_sha256(entry.weights_path()), "cpu")
    assert auto["auto"] is True and record is not None and auto["run_as"] == record.chosen
    assert results["efficientnet_lite0 (int8)"]["run_as"] == "int8" and not results["efficientnet_lite0 (int8)"]["auto"]
    markdown = (out / "report.md").read_text()
    assert "Int8 calibrated on 16 images sampled from" in markdown
    assert f"auto ran efficientnet_lite0 (auto) as {record.chosen}" in markdown
    assert "Int8 calibrated on 16 images" in done.stdout


def test_bench_of_int8_on_a_folder_too_small_for_a_sample_is_refused_before_any_work(tmp_path: Path):
    from tests.helpers import PHOTOS_13

    out = tmp_path / "run"
    done = cli("bench", str(PHOTOS_13), "--models", "efficientnet_lite0", "--run-as", "fp32,int8", "--out", str(out))
    assert done.returncode != 0
    assert "int8 needs 16 calibration photos" in done.stderr and "13 images" in done.stderr
    assert "--calibrate FOLDER" in done.stderr
    assert not out.exists()  # refused before the run folder was made
