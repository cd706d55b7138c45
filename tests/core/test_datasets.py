"""Labelled folders: every way a label can name a class, and labels that match none or several."""

from __future__ import annotations

import os
import shutil

import pytest

from cnnviewer.core.datasets import MAX_DEPTH, DatasetError, load_labelled_folder, match_label
from tests.helpers import PHOTOS_13, VAL_100


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


# -- the folder and labels.csv as untrusted input ----------------------------------------------


def _jpeg(path, colour=(200, 30, 30)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def _csv(folder, rows):
    (folder / "labels.csv").write_text("file,label\n" + "".join(f"{f},{label}\n" for f, label in rows))


def test_a_file_is_counted_once_and_conflicting_labels_are_listed_not_scored(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        _jpeg(tmp_path / name)
    _csv(tmp_path, [("a.jpg", "ice bear"), ("a.jpg", "banana"),  # two labels: which is true is unknown
                    *[("b.jpg", "banana")] * 50,  # fifty times: still one image
                    ("c.jpg", "polar bear"), ("./c.jpg", "296"), ("sub/../c.jpg", "ice_bear"),  # one file, one class
                    ("d.jpg", "crane"), ("d.jpg", "n02012849")])  # ambiguous, then the bird: a conflict too
    (tmp_path / "sub").mkdir()
    dataset = load_labelled_folder(tmp_path)
    assert [(i.path, i.index) for i in dataset.images] == [(str(tmp_path / "b.jpg"), 954),
                                                           (str(tmp_path / "c.jpg"), 296)]
    assert dataset.conflicting == {str(tmp_path / "a.jpg"): ["ice bear", "banana"],
                                   str(tmp_path / "d.jpg"): ["crane", "n02012849"]}
    assert dataset.repeated == [str(tmp_path / "b.jpg"), str(tmp_path / "c.jpg")]
    assert dataset.left_out == 2
    text = "\n".join(dataset.problems)
    assert "2 file(s) are given conflicting labels and are left out: a.jpg ('ice bear', 'banana')" in text
    assert "counted once: b.jpg, c.jpg" in text


def test_labels_csv_cannot_reach_outside_the_folder(tmp_path):
    secret = _jpeg(tmp_path / "elsewhere" / "secret.jpg")
    data = tmp_path / "data"
    _jpeg(data / "ok.jpg")
    _jpeg(data / "cat" / "inside.jpg")
    (data / "link.jpg").symlink_to(secret)
    given = tmp_path / "alias"  # the user's folder reached through a link: paths keep the user's form
    given.symlink_to(data)
    _csv(data, [("ok.jpg", "banana"), ("../elsewhere/secret.jpg", "banana"), (secret, "banana"),
                ("/etc/passwd", "banana"), ("../../../../../../../../etc/passwd", "banana"),
                ("link.jpg", "banana"), (data / "cat" / "inside.jpg", "banana"),  # absolute, but inside
                ("missing.jpg", "banana")])
    dataset = load_labelled_folder(given)
    assert [i.path for i in dataset.images] == [str(given / "ok.jpg"), str(data / "cat" / "inside.jpg")]
    assert dataset.outside == [str(given / "../elsewhere/secret.jpg"), str(secret), "/etc/passwd",
                               str(given / "../../../../../../../../etc/passwd"), str(given / "link.jpg")]
    assert dataset.missing == [str(given / "missing.jpg")]
    assert dataset.left_out == 6
    text = "\n".join(dataset.problems)
    assert f"5 path(s) lead outside {given} and are not read: " in text and "/etc/passwd" in text
    assert "link.jpg" in text and "1 file(s) do not exist: missing.jpg" in text


def test_a_folder_whose_files_all_lead_outside_lists_them_instead_of_no_images(tmp_path):
    _csv(tmp_path, [("/etc/passwd", "banana")])
    dataset = load_labelled_folder(tmp_path)
    assert dataset.images == [] and dataset.outside == ["/etc/passwd"] and dataset.problems


def test_class_folder_links_are_followed_only_inside_the_folder(tmp_path):
    outside = tmp_path / "elsewhere"
    _jpeg(outside / "b.jpg")
    data = tmp_path / "data"
    bear = _jpeg(data / "ice_bear" / "a.jpg")
    _jpeg(data / "ice_bear" / "deeper" / "c.jpg")
    (data / "ice_bear" / "secret.jpg").symlink_to(outside / "b.jpg")
    (data / "ice_bear" / "gone.jpg").symlink_to(data / "nothing.jpg")
    (data / "ice_bear" / "again").symlink_to(data / "ice_bear")  # a loop: read once
    (data / "ice_bear" / "up").symlink_to(data)  # the whole folder again under one class
    (data / "banana").symlink_to(outside)
    (data / "everything").symlink_to("/")  # never walked
    (data / "polar_bear").symlink_to(data / "ice_bear")  # inside: followed; the same files, the same class
    (data / "tabby").symlink_to(data / "ice_bear" / "deeper")  # the same file, another class: a conflict
    dataset = load_labelled_folder(data)
    assert [(i.path, i.label) for i in dataset.images] == [(str(bear), "ice_bear")]
    assert dataset.repeated == [str(bear)]
    assert dataset.conflicting == {str(data / "ice_bear" / "deeper" / "c.jpg"): ["ice_bear", "polar_bear", "tabby"]}
    assert sorted(dataset.outside) == [str(data / "banana"), str(data / "everything"),
                                       str(data / "ice_bear" / "secret.jpg"), str(data / "polar_bear" / "secret.jpg")]
    assert sorted(dataset.missing) == [str(data / "ice_bear" / "gone.jpg"), str(data / "polar_bear" / "gone.jpg")]
    assert set(dataset.unread_folders) == {str(data / c / link) for c in ("ice_bear", "polar_bear")
                                           for link in ("again", "up")}
    assert "a link back to a folder above it" in "\n".join(dataset.problems)


def test_a_class_folder_nested_a_thousand_deep_gives_a_sentence(tmp_path):
    _jpeg(tmp_path / "banana" / "a.jpg")
    folder = tmp_path / "banana"
    chain = []
    for level in range(1000):  # made and removed one by one: os.makedirs and shutil.rmtree recurse
        folder = folder / "d"
        folder.mkdir()
        chain.append(folder)
        if level == 5:
            _jpeg(folder / "shallow.jpg")
    _jpeg(folder / "deep.jpg")
    try:
        dataset = load_labelled_folder(tmp_path)
    finally:
        (folder / "deep.jpg").unlink()
        (chain[5] / "shallow.jpg").unlink()
        for made in reversed(chain):
            made.rmdir()
    assert [os.path.basename(i.path) for i in dataset.images] == ["a.jpg", "shallow.jpg"]
    assert list(dataset.unread_folders.values()) == [f"more than {MAX_DEPTH} folders deep"]
    assert f"1 folder(s) are not read: banana{'/d' * MAX_DEPTH} (more than {MAX_DEPTH} folders deep)" \
        in dataset.problems
