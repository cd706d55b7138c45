"""``cnnviewer weights`` end to end in a subprocess, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib

import torchvision

from tests.test_cli import run
from tests.weights_server import WeightsServer, save_code_pickle, state_dict_bytes


def test_download_with_a_wrong_hash_fails_clearly_and_leaves_no_file(isolated_home):
    with WeightsServer() as server:
        server.files["resnet18-f37072fd.pth"] = state_dict_bytes(torchvision.models.resnet18().state_dict())
        proc = run("weights", "download", "resnet18", env_extra={"CNNVIEWER_WEIGHTS_MIRROR": server.mirror})
    assert proc.returncode == 1
    assert "does not match the hash in its name (f37072fd)" in proc.stderr
    assert "resnet18:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (isolated_home / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth").exists()


def test_download_404_and_unknown_model():
    with WeightsServer() as server:
        proc = run("weights", "download", "alexnet", env_extra={"CNNVIEWER_WEIGHTS_MIRROR": server.mirror})
    assert proc.returncode == 1 and "HTTP 404" in proc.stderr
    assert run("weights", "download", "alexnett").returncode == 2


def test_import_list_verify_classify_remove(tmp_path, isolated_home):
    state = torchvision.models.resnet18().state_dict()
    data = state_dict_bytes(state)
    source = tmp_path / f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    source.write_bytes(data)
    proc = run("weights", "import", str(source))
    assert proc.returncode == 0, proc.stderr
    cached = isolated_home / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert f"resnet18: imported into {cached}" in proc.stdout
    listing = run("weights", "list").stdout
    assert "resnet18-f37072fd.pth" in listing and "imported" in listing and "44.7 MB" in listing
    assert "cached" in [line.split()[-1] for line in run("models").stdout.splitlines() if line.startswith("resnet18 ")]
    assert run("weights", "verify", "resnet18").stdout.strip() == "resnet18-f37072fd.pth: imported"
    assert run("weights", "remove", "resnet18").returncode == 0 and not cached.exists()


def test_import_of_a_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "alexnet.pth"
    save_code_pickle(path, marker, key="x")
    proc = run("weights", "import", str(path), "--model", "alexnet")
    assert proc.returncode == 1 and "refused" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()
