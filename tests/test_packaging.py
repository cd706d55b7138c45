"""Packaging: the self-test an installation runs, the desktop entry, and what the spec bundles."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from cnnviewer.cli import build_parser
from tests.helpers import ROOT, run

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


def _pyinstaller_hooks() -> types.ModuleType:
    """PyInstaller's own hooks when it is installed (packaging/build.sh installs it), else stand-ins.

    The stand-ins do what PyInstaller's do for these packages: a package's files matching the
    patterns, its lib*.so files, its submodules. What is tested is the spec's own choice of files.
    """
    try:
        import PyInstaller.utils.hooks as hooks

        return hooks
    except ImportError:
        pass
    import importlib.util
    import pkgutil

    def folder(package: str) -> Path:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, package
        return Path(next(iter(spec.submodule_search_locations)))

    def collect_data_files(package: str, includes: list[str] | None = None,
                           include_py_files: bool = False) -> list[tuple[str, str]]:
        base = folder(package)
        patterns = includes or (["**/*"] if include_py_files else ["**/*[!.py]"])
        return [(str(p), str(p.parent.relative_to(base.parent))) for pattern in patterns for p in base.glob(pattern)
                if p.is_file()]

    def collect_dynamic_libs(package: str) -> list[tuple[str, str]]:
        base = folder(package)
        return [(str(p), str(p.parent.relative_to(base.parent))) for p in base.rglob("lib*.so*")]

    def collect_submodules(package: str) -> list[str]:
        found = [package]
        found += [m.name for m in pkgutil.walk_packages([str(folder(package))], package + ".")]
        return found

    hooks = types.ModuleType("PyInstaller.utils.hooks")
    hooks.__dict__.update(collect_data_files=collect_data_files, collect_dynamic_libs=collect_dynamic_libs,
                          collect_submodules=collect_submodules)
    return hooks


def test_spec_bundles_resources_weights_and_torchvision_ops_but_no_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the spec's own code and look at what it would hand PyInstaller's Analysis."""
    spec_path = ROOT / "packaging" / "cnnviewer.spec"
    monkeypatch.setitem(sys.modules, "PyInstaller.utils.hooks", _pyinstaller_hooks())
    try:
        import PyInstaller.depend.dylib  # noqa: F401 - the real exclusion list, where PyInstaller is installed
        real_exclusions = True
    except ImportError:
        real_exclusions = False  # `make test` installs no PyInstaller: only the build does  # a stand-in that bundles every library (PyInstaller leaves out libc, libGL, libxcb...)
        dylib = types.ModuleType("PyInstaller.depend.dylib")
        dylib.__dict__["include_library"] = lambda name: True
        depend = types.ModuleType("PyInstaller.depend")
        depend.__dict__["dylib"] = dylib
        for name, module in (("PyInstaller", types.ModuleType("PyInstaller")), ("PyInstaller.depend", depend),
                             ("PyInstaller.depend.dylib", dylib)):
            monkeypatch.setitem(sys.modules, name, module)
        sys.modules["PyInstaller"].__dict__["depend"] = depend
    analysis: dict[str, Any] = {}

    def record_analysis(scripts: list[str], **options: Any) -> types.SimpleNamespace:
        analysis.update(options, scripts=scripts)
        return types.SimpleNamespace(pure=[], scripts=[], binaries=[], datas=[])

    namespace = {"SPECPATH": str(spec_path.parent), "Analysis": record_analysis, "PYZ": lambda *a, **k: None,
                 "EXE": lambda *a, **k: None, "COLLECT": lambda *a, **k: None, "__file__": str(spec_path)}
    exec(compile(spec_path.read_text(encoding="utf-8"), str(spec_path), "exec"), namespace)

    assert all(Path(script).is_file() for script in analysis["scripts"])
    datas = {Path(source).resolve(): dest for source, dest in analysis["datas"]}
    assert datas[ROOT / "resources"] == "resources"
    weights = [source for source in datas if source.suffix == ".pth"]
    for n in range(3):  # the embedded EfficientNet-Lite weights, the files themselves
        assert any(f"efficientnet-lite{n}" in p.name and p.stat().st_size > 10 * 2**20 for p in weights), weights
    names = {Path(source).name: dest for source, dest in analysis["binaries"]}
    # torchvision's operators (else: "operator torchvision::nms does not exist" at start-up)
    assert names.get("_C_stable.so", names.get("_C.so")) == "torchvision", sorted(names)
    assert not any(ROOT / "tests" in (p, *p.parents) for p in datas)
    # The X11 libraries the bundle carries for Qt's xcb plugin go with their copyright files (MIT/X11).
    if shutil.which("dpkg-query") and Path("/usr/share/doc/libxcb-cursor0/copyright").is_file():
        assert datas[Path("/usr/share/doc/libxcb-cursor0/copyright")] == "licenses/libxcb-cursor0"
        if real_exclusions:  # the stand-in above bundles everything, so only PyInstaller's own list can say
            assert not any(dest == "licenses/libxcb1" for dest in datas.values())  # PyInstaller leaves libxcb out
    assert {"tests", "pytest", "pytestqt", "hypothesis"} <= set(analysis["excludes"])
