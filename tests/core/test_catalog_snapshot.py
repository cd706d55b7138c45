"""The catalog without torch: torch's weights folder by torch's own rule, torchvision's entries from a kept snapshot."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import pytest

from cnnviewer import __version__
from cnnviewer.core import catalog as catalog_module
from cnnviewer.core.catalog import (
    _live_torchvision_entries,
    _read_snapshot,
    _torchvision_entries,
    snapshot_file,
    torchvision_categories,
)

TORCHVISION = version("torchvision")

# Each environment variant: what the variables are (None: unset). Ours is computed before torch is
# imported, torch's after, in the same process with the same variables.
HUB_RULE = r"""
import json, os, sys
variants = json.loads(sys.argv[1])
from cnnviewer.core.catalog import checkpoints_dir
ours = []
for variant in variants:
    for name, value in variant.items():
        os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
    ours.append(str(checkpoints_dir()))
assert "torch" not in sys.modules, "checkpoints_dir() imported torch"
import torch.hub
theirs = []
for variant in variants:
    for name, value in variant.items():
        os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
    theirs.append(os.path.join(torch.hub.get_dir(), "checkpoints"))
torch.hub.set_dir(sys.argv[2])
print(json.dumps({"ours": ours, "theirs": theirs, "set_dir": str(checkpoints_dir())}))
"""


def test_checkpoints_dir_is_torch_hubs_folder_without_importing_torch(tmp_path):
    variants = [
        {"TORCH_HOME": str(tmp_path / "torch-home"), "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"TORCH_HOME": "~/relative-torch", "XDG_CACHE_HOME": None},
        {"TORCH_HOME": None, "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"TORCH_HOME": None, "XDG_CACHE_HOME": "~/xdg-with-tilde"},
        {"TORCH_HOME": None, "XDG_CACHE_HOME": None},
    ]
    done = subprocess.run([sys.executable, "-c", HUB_RULE, json.dumps(variants), str(tmp_path / "set")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["ours"] == answer["theirs"]
    assert len(set(answer["ours"])) == len(variants)  # each variant reached a folder of its own
    assert answer["set_dir"] == str(tmp_path / "set" / "checkpoints")  # torch loaded: its set_dir() counts


def _written() -> Path:
    path = snapshot_file(TORCHVISION)
    assert not path.exists()  # each test has a cache folder of its own
    _torchvision_entries()
    assert path.is_file()
    return path


def test_snapshot_entries_and_class_names_equal_torchvisions_own():
    path = _written()
    snapshot = _read_snapshot(TORCHVISION)
    assert snapshot is not None
    live = _live_torchvision_entries()
    assert [e.name for e in snapshot.entries] == [e.name for e in live] and len(live) > 50
    for kept, made in zip(snapshot.entries, live, strict=True):
        assert asdict(kept) == asdict(made)  # every field; and the types too (tuples stay tuples):
        assert kept == made and type(kept.preprocessing.mean) is tuple
    from torchvision.models import ResNet18_Weights

    assert snapshot.categories == tuple(ResNet18_Weights.DEFAULT.meta["categories"]) == torchvision_categories()
    document = json.loads(path.read_text())
    assert document["versions"] == {"cnnviewer": __version__, "torchvision": TORCHVISION}
    assert document["format"] == catalog_module.SNAPSHOT_FORMAT


def _rewrite(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _field(name: str, value: object):
    def change(document: dict) -> None:
        document["entries"][0][name] = value
    return change


DAMAGE = {
    "not JSON": lambda path: path.write_bytes(b'{"format": 1, "entr'),
    "not UTF-8": lambda path: path.write_bytes(b"\xff\xfe{}"),
    "a list": lambda path: path.write_text("[]"),
    "another format": lambda path: _rewrite(path, lambda d: d.update(format=0)),
    "no entries": lambda path: _rewrite(path, lambda d: d.update(entries=[])),
    "999 class names": lambda path: _rewrite(path, lambda d: d["categories"].pop()),
    "a class name not text": lambda path: _rewrite(path, lambda d: d["categories"].__setitem__(3, 3)),
    "a field missing": lambda path: _rewrite(path, lambda d: d["entries"][0].pop("gmacs")),
    "a field too many": lambda path: _rewrite(path, _field("colour", "red")),
    "a count as text": lambda path: _rewrite(path, _field("num_params", "25557032")),
    "a count as true": lambda path: _rewrite(path, _field("num_params", True)),
    "a mean of two": lambda path: _rewrite(path, lambda d: d["entries"][0]["preprocessing"].update(mean=[0.5, 0.5])),
    "a file name with a folder": lambda path: _rewrite(path, _field("weights_filename", "../../elsewhere.pth")),
    "an embedded entry": lambda path: _rewrite(path, _field("source", "embedded")),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_snapshot_is_not_used_and_is_made_again(damage, caplog):
    path = _written()
    live = _live_torchvision_entries()
    DAMAGE[damage](path)
    with caplog.at_level(logging.WARNING, logger="cnnviewer.core.catalog"):
        assert _torchvision_entries() == live
    assert any("not used and will be made again" in r.getMessage() and str(path) in r.getMessage()
               for r in caplog.records)
    again = _read_snapshot(TORCHVISION)  # rebuilt: sound again
    assert again is not None and list(again.entries) == live


def test_a_snapshot_made_by_other_versions_is_not_used(caplog):
    path = _written()
    live = _live_torchvision_entries()

    def stale(versions: dict) -> None:
        _rewrite(path, lambda d: (d.update(versions=versions), d["entries"][0].update(title="Stale")))

    for versions in ({"cnnviewer": __version__, "torchvision": "0.1.0"}, {"cnnviewer": "0.0.1", "torchvision": TORCHVISION}):
        stale(versions)
        with caplog.at_level(logging.INFO, logger="cnnviewer.core.catalog"):
            assert _torchvision_entries() == live
        assert "for other versions" in caplog.text
        assert json.loads(path.read_text())["versions"] == {"cnnviewer": __version__, "torchvision": TORCHVISION}
    # Another torchvision's file is never opened: its name says its version.
    other = snapshot_file("0.1.0")
    other.write_text(path.read_text().replace(f'"torchvision": "{TORCHVISION}"', '"torchvision": "0.1.0"'))
    path.unlink()
    assert _torchvision_entries() == live and path.is_file()


def test_a_cache_folder_that_cannot_be_written_still_gives_the_catalog(isolated_home, monkeypatch, caplog):
    blocked = isolated_home / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("CNNVIEWER_CACHE_DIR", str(blocked / "cache"))
    with caplog.at_level(logging.WARNING, logger="cnnviewer.core.catalog"):
        assert _torchvision_entries() == _live_torchvision_entries()
    assert "the catalog snapshot is not kept" in caplog.text


# In a fresh process: the whole catalog, a look-up, the class names and the weights folder.
FRESH = ("import json, sys; from cnnviewer.core.catalog import catalog, get_entry; "
         "from cnnviewer.core.labels import imagenet_categories; "
         "names = [e.name for e in catalog()]; entry = get_entry('resnet50'); "
         "print(json.dumps([names, entry.title, str(entry.cached_weights_path()), len(imagenet_categories()), "
         "'torchvision' in sys.modules, 'torch' in sys.modules]))")


def test_a_fresh_process_with_a_kept_snapshot_builds_the_catalog_without_torchvision():
    _written()
    done = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    names, title, weights, classes, torchvision_imported, torch_imported = json.loads(done.stdout)
    assert names == [e.name for e in catalog_module.catalog()]
    assert title == "ResNet50" and classes == 1000
    assert weights == str(catalog_module.get_entry("resnet50").cached_weights_path())
    assert (torchvision_imported, torch_imported) == (False, False)


def test_an_embedded_model_is_found_without_torchvision_even_before_a_snapshot_is_kept():
    assert not snapshot_file(TORCHVISION).exists()
    probe = ("import sys; from cnnviewer.core.catalog import get_entry; entry = get_entry('EfficientNet-Lite0'); "
             "print(entry.name, entry.weights_path().is_file(), 'torchvision' in sys.modules, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["efficientnet_lite0", "True", "False", "False"]
