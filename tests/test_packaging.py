"""Packaging: the self-test an installation runs, the desktop entry, and what the spec bundles."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from cnnviewer.cli import build_parser
from tests.conftest import ROOT
from tests.test_cli import run

DESKTOP = ROOT / "packaging" / "cnnviewer.desktop"


def test_self_test_passes_and_saves_a_screenshot(tmp_path):
    proc = run("--self-test", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-test passed" in proc.stdout and proc.stdout.count("[ok]") == 5
    assert (tmp_path / "self-test-window.png").stat().st_size > 1000


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-validate is not installed (Debian: desktop-file-utils; .ci/run installs it)")
def test_desktop_entry_is_valid():
    proc = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_desktop_entry_offers_every_image_type_and_passes_files():
    text = DESKTOP.read_text()
    assert re.search(r"^Exec=cnnviewer %F$", text, re.M)
    mimes = set(re.search(r"^MimeType=(.*)$", text, re.M).group(1).strip(";").split(";"))
    assert {"image/jpeg", "image/png", "image/bmp", "image/gif", "image/webp", "image/tiff"} <= mimes
    assert (ROOT / "resources" / "cnnviewer.png").is_file()
    # %F may pass several files: the command accepts them and opens the first.
    assert build_parser().parse_args(["gui", "a.jpg", "b.png"]).paths == ["a.jpg", "b.png"]


def test_spec_bundles_resources_weights_and_torchvision_ops_but_no_tests():
    spec = (ROOT / "packaging" / "cnnviewer.spec").read_text()
    assert '"resources"' in spec and "models/*.pth" in spec
    assert 'glob.glob(os.path.join(TORCHVISION, "*.so"))' in spec  # else: operator torchvision::nms does not exist
    assert "tests" in spec.split("excludes =")[1] and "pytest" in spec
