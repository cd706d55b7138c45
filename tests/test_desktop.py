"""A bare desktop: the libraries Qt's X11 plugin needs and their packages, and `make run`'s install stamp."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import ROOT

PACKAGING = ROOT / "packaging"
needs_ldd = pytest.mark.skipif(shutil.which("ldd") is None, reason="no ldd here (glibc's libc-bin provides it)")


def _load(name: str) -> ModuleType:
    """A module of packaging/ (they run as scripts, and in the bundle, not as a package)."""
    spec = importlib.util.spec_from_file_location(name, PACKAGING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


qt_libs = _load("qt_system_libs")


@pytest.fixture(scope="module")
def plugin() -> Path:
    found = qt_libs.xcb_plugin()
    assert found is not None, "the installed PySide6 has no xcb platform plugin"
    return found


@needs_ldd
def test_every_x11_library_of_the_real_plugin_has_its_packages(plugin: Path) -> None:
    output = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True).stdout
    names = set(qt_libs.found_libraries(output)) | set(qt_libs.missing_sonames(output))
    x11 = {n for n in names if n.startswith(("libxcb", "libX", "libxkb"))}
    assert {"libxcb.so.1", "libX11-xcb.so.1", "libxkbcommon-x11.so.0"} <= x11, sorted(names)
    assert x11 <= set(qt_libs.PACKAGES), sorted(x11 - set(qt_libs.PACKAGES))
    # What the real ldd says is what find_missing reports: nothing here, or exactly the "not found" ones.
    missing = qt_libs.find_missing(plugin)
    assert (missing.libraries if missing else ()) == tuple(qt_libs.missing_sonames(output))


@needs_ldd
def test_a_missing_library_gives_one_line_with_the_exact_install_command(plugin: Path) -> None:
    output = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True).stdout
    # The real output of a machine that has everything, and the two lines of one that lacks the two
    # libraries the issue met (ldd prints a missing library once per library that needs it).
    output += "\tlibxcb-icccm.so.4 => not found\n\tlibxcb-keysyms.so.1 => not found\n" * 2
    libraries = qt_libs.missing_sonames(output)
    assert libraries == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    packages, unknown = qt_libs.packages_for(libraries, qt_libs.DEBIAN)
    missing = qt_libs.Missing(plugin, tuple(libraries), tuple(packages), tuple(unknown), qt_libs.DEBIAN)
    advice = missing.advice()
    assert "\n" not in advice
    assert advice.endswith("needs libxcb-icccm.so.4 and libxcb-keysyms.so.1, which are not installed; install "
                           "them with `sudo apt-get install libxcb-icccm4 libxcb-keysyms1`"), advice
    assert str(plugin.name) in advice
    assert missing.command(qt_libs.FEDORA) == "sudo dnf install xcb-util-wm xcb-util-keysyms"
    elsewhere = qt_libs.Missing(plugin, tuple(libraries), tuple(packages), (), None).advice()
    assert ("`sudo apt-get install libxcb-icccm4 libxcb-keysyms1` (Debian, Ubuntu) or "
            "`sudo dnf install xcb-util-wm xcb-util-keysyms` (Fedora)") in elsewhere


@needs_ldd
def test_a_library_no_package_is_known_for_is_named_as_it_is(plugin: Path, tmp_path: Path) -> None:
    # The plugin copied away from the Qt libraries its RUNPATH points at: the real ldd finds none of them.
    copy = tmp_path / "platforms" / "libqxcb.so"
    copy.parent.mkdir()
    shutil.copy(plugin, copy)
    missing = qt_libs.find_missing(copy)
    assert missing is not None and "libQt6XcbQpa.so.6" in missing.unknown
    assert "no package is known here for libQt6XcbQpa.so.6" in missing.advice()


def test_packages_are_named_once_for_debian_and_fedora() -> None:
    libraries = ["libxcb-shm.so.0", "libxcb-randr.so.0", "libxcb-cursor.so.0", "libfoo.so.3"]
    assert qt_libs.packages_for(libraries, qt_libs.DEBIAN) == (["libxcb-shm0", "libxcb-randr0", "libxcb-cursor0"],
                                                               ["libfoo.so.3"])
    assert qt_libs.packages_for(libraries, qt_libs.FEDORA) == (["libxcb", "xcb-util-cursor"], ["libfoo.so.3"])


@pytest.mark.parametrize(("environ", "checked"), [
    ({"DISPLAY": ":0"}, True),
    ({}, True),  # no display at all: Qt still tries xcb first
    ({"QT_QPA_PLATFORM": "xcb"}, True),
    ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, False),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, False),
    ({"WAYLAND_DISPLAY": "wayland-0"}, False),
    ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, False),
    ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}, True),
])
def test_the_check_runs_only_where_qt_will_load_the_xcb_plugin(environ: dict[str, str], checked: bool) -> None:
    assert qt_libs.uses_xcb(environ) is checked


@needs_ldd
def test_an_offscreen_start_is_never_stopped(plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "platforms" / "libqxcb.so"  # a plugin that cannot load: its Qt libraries are not beside it
    copy.parent.mkdir()
    shutil.copy(plugin, copy)
    assert qt_libs.check(install_allowed=False, environ={"DISPLAY": ":0"}, plugin=copy) == 1
    assert "cannot open its window" in capsys.readouterr().err
    assert qt_libs.check(install_allowed=False, environ={"QT_QPA_PLATFORM": "offscreen"}, plugin=copy) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("os_release", "family"), [
    ('ID=debian\nVERSION_ID="12"\n', "debian"),
    ('ID=ubuntu\nID_LIKE=debian\n', "debian"),
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', "debian"),
    ('ID=fedora\n', "fedora"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "fedora"),
])
def test_the_system_family_comes_from_os_release(os_release: str, family: str) -> None:
    assert qt_libs.system_family(os_release) == family


def test_the_launcher_checks_only_what_opens_the_window() -> None:
    sys.path.insert(0, str(PACKAGING))
    try:
        launcher = _load("launcher")
    finally:
        sys.path.remove(str(PACKAGING))
    assert launcher.opens_window([]) and launcher.opens_window(["gui"]) and launcher.opens_window(["photo.jpg"])
    assert not launcher.opens_window(["classify", "photo.jpg"]) and not launcher.opens_window(["--self-test"])
    assert not launcher.opens_window(["bench", "folder"]) and not launcher.opens_window(["--version"])


# -- make run's stamp -------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_installs_again_only_when_pyproject_changed(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)

    def planned() -> str:  # what `make run` would do (make -n runs nothing)
        proc = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), "run", f"VENV={venv}"], capture_output=True, text=True,
                              env=dict(os.environ, MAKEFLAGS=""), timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    first = planned()
    assert "pip install" in first and "Editable installation" in first  # the box is silenced
    stamp = venv / ".installed"
    stamp.touch()
    later = time.time() + 60
    os.utime(stamp, (later, later))
    second = planned()
    assert "pip" not in second
    lines = second.strip().splitlines()
    assert "qt_system_libs.py --install" in lines[0] and lines[-1].endswith("/bin/cnnviewer"), lines
    earlier = (ROOT / "pyproject.toml").stat().st_mtime - 60
    os.utime(stamp, (earlier, earlier))
    assert "pip install" in planned()
