"""Labelled folders: every way a label can name a class, and labels that match none or several."""

from __future__ import annotations

import shutil

import pytest

from cnnviewer.core.datasets import DatasetError, load_labelled_folder, match_label
from tests.conftest import PHOTOS_13, VAL_100


@pytest.mark.parametrize("label", ["ice bear", "polar bear", "Polar_Bear", "polar-bear", "n02134084", "296",
                                   "  POLAR   bear ", "Ursus Maritimus"])
def test_a_label_matches_by_name_lemma_wnid_or_index(label):
    assert match_label(label) == {296}


def test_ambiguous_and_unknown_labels():
    assert match_label("crane") == {134, 517}
    assert match_label("dog") == frozenset()


def test_photos_13_everyday_labels_all_match():
    dataset = load_labelled_folder(PHOTOS_13)
    assert dataset.layout == "labels.csv" and len(dataset.images) == 13 and dataset.problems == []
    by_file = {image.path.rsplit("/", 1)[-1]: image.index for image in dataset.images}
    assert by_file["polar_bear.jpg"] == 296 and by_file["black_bear.jpg"] == 295 and by_file["coral.jpg"] == 973


def test_val_100_folders():
    dataset = load_labelled_folder(VAL_100)
    assert dataset.layout == "folders" and len(dataset.images) == 100 and not dataset.problems


def test_unmatched_and_ambiguous_labels_are_listed_with_their_files(tmp_path):
    for folder, source in (("n02134084", "polar_bear.jpg"), ("dog", "black_bear.jpg"), ("crane", "banana_0.jpg"),
                           ("954", "banana_0.jpg")):
        (tmp_path / folder).mkdir()
        shutil.copy(PHOTOS_13 / source, tmp_path / folder / source)
    (tmp_path / "dog" / "notes.txt").write_text("not an image, not counted")
    dataset = load_labelled_folder(tmp_path)
    assert sorted(i.index for i in dataset.images) == [296, 954]
    assert dataset.unmatched == {"dog": [str(tmp_path / "dog" / "black_bear.jpg")]}
    assert list(dataset.ambiguous) == ["crane"] and dataset.ambiguous["crane"][0] == [134, 517]
    text = " ".join(dataset.problems)
    assert "'dog' matches no ImageNet-1k class" in text and "black_bear.jpg" in text
    assert "'crane' matches several classes" in text and "134" in text


def test_csv_needs_its_columns_and_an_empty_folder_says_so(tmp_path):
    (tmp_path / "labels.csv").write_text("name,class\na.jpg,banana\n")
    with pytest.raises(DatasetError, match="'file' and 'label'"):
        load_labelled_folder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no labelled images"):
        load_labelled_folder(empty)
    with pytest.raises(DatasetError, match="not a folder"):
        load_labelled_folder(tmp_path / "missing")
