"""``cnnviewer weights`` end to end (in this process), against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json

import torchvision

from tests.helpers import EMBEDDED, PHOTOS_13, run_inprocess
from tests.weights_server import WeightsServer, save_code_pickle, state_dict_bytes


def test_download_with_a_wrong_hash_fails_clearly_and_leaves_no_file(isolated_home):
    with WeightsServer() as server:
        server.files["resnet18-f37072fd.pth"] = state_dict_bytes(torchvision.models.resnet18().state_dict())
        code, _, err = run_inprocess("weights", "download", "resnet18",
                                     env_extra={"CNNVIEWER_WEIGHTS_MIRROR": server.mirror})
    assert code == 1
    assert "does not match the hash in its name (f37072fd)" in err
    assert "resnet18:" in err and "Traceback" not in err
    assert not (isolated_home / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth").exists()


def test_download_404_and_unknown_model():
    with WeightsServer() as server:
        code, _, err = run_inprocess("weights", "download", "alexnet",
                                     env_extra={"CNNVIEWER_WEIGHTS_MIRROR": server.mirror})
    assert code == 1 and "HTTP 404" in err
    code, _, err = run_inprocess("weights", "download", "alexnett")
    assert code == 2 and "alexnett" in err


def test_import_list_verify_classify_remove(tmp_path, isolated_home):
    """A fine-tuned resnet18 (random weights here) is stored and shown as imported, never as torchvision's."""
    state = torchvision.models.resnet18().state_dict()
    data = state_dict_bytes(state)
    digest = hashlib.sha256(data).hexdigest()
    source = tmp_path / "best.pth"
    source.write_bytes(data)
    code, out, err = run_inprocess("weights", "import", str(source), "--model", "resnet18")
    assert code == 0, err
    stored = isolated_home / "data" / "weights" / f"resnet18-{digest[:16]}.pth"
    label = f"imported: best.pth (sha256 {digest[:8]}…)"
    assert f"resnet18: imported into {stored} ({label};" in out
    assert not (isolated_home / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth").exists()
    listing = run_inprocess("weights", "list")[1]
    assert stored.name in listing and label in listing and "44.7 MB" in listing
    models = run_inprocess("models")[1]
    [line] = [line for line in models.splitlines() if line.startswith("resnet18 ")]
    assert line.endswith(f"45 MB  {label}")
    [row] = [r for r in json.loads(run_inprocess("models", "--format", "json")[1]) if r["name"] == "resnet18"]
    assert (row["weights"], row["availability"], row["path"]) == (label, "imported", str(stored))
    code, out, err = run_inprocess("classify", str(PHOTOS_13 / "polar_bear.jpg"), "--model", "resnet18",
                                   "--run-as", "fp32")  # the way auto would choose is tested elsewhere
    assert code == 0, err
    assert out.startswith(f"Model: resnet18 (ResNet18, {label}, cpu, fp32)\n")
    code, out, _ = run_inprocess("weights", "remove", "resnet18")
    assert code == 0 and f"removed {stored}" in out and not stored.exists()


def test_list_shows_partial_downloads_and_survives_a_nested_record(isolated_home):
    checkpoints = isolated_home / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "resnet50-11ad3fa6.pth.partial").write_bytes(b"x" * 3000)
    (checkpoints / "resnet18-f37072fd.pth").write_bytes(b"x" * 3000)
    (isolated_home / "config").mkdir()
    (isolated_home / "config" / "weights-checked.json").write_text("[" * 100_000 + "]" * 100_000)
    code, out, err = run_inprocess("weights", "list")
    assert code == 0 and "Traceback" not in err, err
    assert "resnet50-11ad3fa6.pth.partial" in out and "partial download" in out
    assert "resnet18-f37072fd.pth" in out and "not checked" in out
    assert "weights download NAME" in out
    log = (isolated_home / "cnnviewer.log").read_text(encoding="utf-8")
    assert "weights-checked.json: it is not valid JSON (RecursionError); using the default instead" in log


def test_import_of_a_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "alexnet.pth"
    save_code_pickle(path, marker, key="x")
    code, _, err = run_inprocess("weights", "import", str(path), "--model", "alexnet")
    assert code == 1 and f"cnnviewer: {path}: refused" in err and "Traceback" not in err
    assert not marker.exists()


def test_list_and_verify_on_a_fresh_home_show_the_embedded_models_and_say_what_is_missing(isolated_home):
    code, out, err = run_inprocess("weights", "list")
    assert code == 0 and err == "", err
    embedded, _, rest = out.partition("Weights cache: ")
    assert embedded.startswith("Embedded weights (they come with cnnviewer: ready, nothing to download):\n")
    for name in EMBEDDED:
        [line] = [line for line in embedded.splitlines() if f" {name} " in line]
        assert line.endswith("  embedded") and " MB " in line
    assert rest.count("(empty)") == 2
    assert ("No downloaded or imported weights yet: `cnnviewer weights download NAME` downloads torchvision's"
            in rest and "`cnnviewer weights import FILE`" in rest)
    assert run_inprocess("weights", "verify") == (0, "nothing to verify: no downloaded or imported weights\n", "")
    code, out, err = run_inprocess("weights", "verify", "efficientnet-lite1")
    assert (code, out, err) == (0, "efficientnet-lite1-77cc7160.pth: verified\n", "")  # the installed file, hashed
    code, _, err = run_inprocess("weights", "verify", "resnet50")  # a model of torchvision's with no file: an error
    assert code == 1 and "resnet50 has no weights file in" in err


def test_verify_with_files_prints_what_it_did_and_list_drops_the_hint(isolated_home):
    checkpoints = isolated_home / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    data = b"weights of a model of someone's own" * 100
    good = checkpoints / f"mynet-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    good.write_bytes(data)
    code, out, err = run_inprocess("weights", "verify")
    assert (code, out, err) == (0, f"{good.name}: verified\n", "")
    listing = run_inprocess("weights", "list")[1]
    assert good.name in listing and "(no model of the catalog)" in listing
    assert "No downloaded or imported weights yet" not in listing and listing.count("(empty)") == 1
    (checkpoints / "resnet50-11ad3fa6.pth.partial").write_bytes(b"x" * 3000)
    good.unlink()
    code, out, _ = run_inprocess("weights", "verify")
    assert (code, out) == (0, "nothing to verify: no downloaded or imported weights (a partial download is checked "
                              "when it completes)\n")
