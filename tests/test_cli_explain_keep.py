"""`cnnviewer explain` names a class by its name as the window's class picker does, and writes its files
with the window's own save call (the overlay fades past the crop; the map only when asked)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnviewer.core.labels import UnknownClass, class_of
from tests.helpers import PHOTOS_13, cli


@pytest.mark.parametrize(("text", "index"), [("948", 948), ("granny", 948), ("GRANNY  Smith", 948),
                                             ("tabby", 281), ("ice bear", 296), ("0", 0)])
def test_a_class_by_index_name_lemma_or_unique_part(text, index):
    assert class_of(text) == index


@pytest.mark.parametrize(("text", "said"), [("bear", "names 9 classes"), ("crane", "134 crane bird, 517 crane"),
                                            ("xyzzy", "no ImageNet-1k class"), ("1000", "0-999"), ("  ", "no class")])
def test_a_name_that_is_not_one_class_says_why(text, said):
    with pytest.raises(UnknownClass, match=said):
        class_of(text)


def test_explain_a_class_by_its_name_and_keep_no_map_unless_asked(tmp_path):
    out = tmp_path / "granny.png"
    proc = cli("explain", str(PHOTOS_13 / "granny_smith_0.jpg"), "-m", "efficientnet_lite0",
               "--class", "granny smith", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Grad-CAM of class 948 Granny Smith" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["granny.png"]  # no .npy without --heatmap
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.size == Image.open(PHOTOS_13 / "granny_smith_0.jpg").size


def test_an_ambiguous_class_name_is_a_usage_error_that_lists_them(tmp_path):
    proc = cli("explain", str(PHOTOS_13 / "polar_bear.jpg"), "--class", "bear", "--out", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert "--class: 'bear' names 9 classes" in proc.stderr and "296 ice bear" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_the_cli_overlay_fades_past_the_crop_instead_of_a_hard_edge(tmp_path):
    """coral.jpg is wide: the model's centre crop leaves a band on each side, and the map is strong at the
    crop's left edge. Past the crop the map used to stop in one step; now the overlay fades out."""
    photo = PHOTOS_13 / "coral.jpg"
    out, heat = tmp_path / "coral.png", tmp_path / "coral.npy"
    proc = cli("explain", str(photo), "-m", "efficientnet_lite0", "--opacity", "1", "--out", str(out),
               "--heatmap", str(heat))
    assert proc.returncode == 0, proc.stderr
    array = np.load(heat)
    left = int(np.flatnonzero(array.max(axis=0) > 0)[0])  # the map itself is zero outside the crop
    assert array.shape[1] * 0.15 < left < array.shape[1] * 0.4
    with Image.open(photo) as original, Image.open(out) as picture:
        differs = (np.abs(np.asarray(picture.convert("RGB"), dtype=int)
                          - np.asarray(original.convert("RGB"), dtype=int)).sum(axis=2) > 30).mean(axis=0)
    assert differs[left - 3] > 0.05  # the overlay goes on a little past the crop's edge...
    assert differs[left - 80] < 0.01  # ...and is gone well past it
