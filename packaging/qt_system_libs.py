"""What Qt's X11 platform plugin needs from the system: the missing libraries, their packages, and installing them."""

# Qt's own message for a missing library ("From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed ...")
# names xcb-cursor whatever is missing, so `make run` and the bundle ask the dynamic linker instead:
# `ldd` on the xcb plugin lists every library of its closure that cannot be found.
#
# Usage: python packaging/qt_system_libs.py [--install]
#   exit 0 when nothing is missing (or the window will not use X11); with --install, as root or with
#   passwordless sudo, what is missing is installed with apt-get (or dnf); otherwise exit 1 after one
#   line that gives the exact command.

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEBIAN, FEDORA = "debian", "fedora"

# soname -> (Debian/Ubuntu package, Fedora package): the xcb plugin of Qt 6 and every library of its
# closure that a minimal desktop may lack. Libraries every system has (libc, libstdc++, zlib) are not
# listed; one of those missing is named as it is.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libXau.so.6": ("libxau6", "libXau"),
    "libXdmcp.so.6": ("libxdmcp6", "libXdmcp"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libpng16.so.16": ("libpng16-16", "libpng"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libGLdispatch.so.0": ("libglvnd0", "libglvnd"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
}

NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$", re.M)
FOUND = re.compile(r"^\s*(\S+)\s+=>\s+(/\S+)\s+\(0x[0-9a-f]+\)\s*$", re.M)


@dataclass(frozen=True)
class Missing:
    """What the plugin lacks: the libraries, and the packages that provide them on one family of systems."""

    plugin: Path
    libraries: tuple[str, ...]
    packages: tuple[str, ...]  # for `family`
    unknown: tuple[str, ...]  # libraries no package is known for
    family: str | None  # DEBIAN, FEDORA, or None when this system is neither

    def command(self, family: str | None = None, sudo: bool = True) -> str:
        """The install command, e.g. ``sudo apt-get install libxcb-icccm4 libxcb-keysyms1``."""
        family = family or self.family or DEBIAN
        tool = "apt-get install" if family == DEBIAN else "dnf install"
        return " ".join(["sudo"] * sudo + [tool, *packages_for(self.libraries, family)[0]])

    def advice(self) -> str:
        """One sentence naming the plugin, what it lacks, and the exact command that installs it."""
        them = "it" if len(self.libraries) == 1 else "them"
        text = (f"cnnviewer cannot open its window: Qt's X11 platform plugin {_shown(self.plugin)} needs "
                f"{_and(self.libraries)}, which {'is' if len(self.libraries) == 1 else 'are'} not installed")
        if self.packages and self.family is None:
            text += f"; install {them} with `{self.command(DEBIAN)}` (Debian, Ubuntu) or `{self.command(FEDORA)}` (Fedora)"
        elif self.packages:
            text += f"; install {them} with `{self.command()}`"
        if self.unknown:
            text += (f"; no package is known here for {_and(self.unknown)} (`apt-file search NAME` or "
                     "`dnf provides '*/NAME'` names it)")
        return text


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def xcb_plugin() -> Path | None:
    """The xcb platform plugin cnnviewer will load: the bundle's, else the installed PySide6's."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        base = Path(bundle) / "PySide6"
    else:
        spec = importlib.util.find_spec("PySide6")  # found, not imported: nothing of Qt is loaded yet
        if spec is None or not spec.submodule_search_locations:
            return None
        base = Path(next(iter(spec.submodule_search_locations)))
    plugin = base / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_sonames(ldd_output: str) -> list[str]:
    """The libraries ``ldd`` reported as ``not found``, each once, in the order it named them."""
    return list(dict.fromkeys(NOT_FOUND.findall(ldd_output)))


def found_libraries(ldd_output: str) -> dict[str, Path]:
    """soname -> the file ``ldd`` resolved it to."""
    return {name: Path(path) for name, path in FOUND.findall(ldd_output)}


def ldd(plugin: Path, environ: Mapping[str, str] | None = None) -> str | None:
    """What ``ldd`` says of ``plugin``, or None where there is no ldd to ask."""
    if shutil.which("ldd") is None:
        return None
    return subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, env=dict(environ or os.environ),
                          timeout=60).stdout


def licence_files(plugin: Path, bundled: Callable[[str], bool] = lambda name: True) -> list[tuple[str, Path]]:
    """(Debian package, its copyright file) for each library of ``PACKAGES`` the plugin loads from the system
    and ``bundled`` says goes into the bundle; empty where dpkg does not know the files."""
    if shutil.which("dpkg-query") is None:
        return []
    found: dict[str, Path] = {}
    for name, path in found_libraries(ldd(plugin) or "").items():
        if name not in PACKAGES or not bundled(name) or "site-packages" in path.parts:
            continue
        for candidate in dict.fromkeys([path, path.resolve(), Path("/usr") / path.relative_to("/")]):
            owner = subprocess.run(["dpkg-query", "-S", str(candidate)], capture_output=True, text=True, timeout=60)
            package = owner.stdout.split(":", 1)[0].strip() if owner.returncode == 0 else ""
            copyright_file = Path("/usr/share/doc") / package / "copyright"
            if package and copyright_file.is_file():
                found[package] = copyright_file
                break
    return sorted(found.items())


def packages_for(libraries: Sequence[str], family: str) -> tuple[list[str], list[str]]:
    """(packages that provide ``libraries`` on ``family``, each once; libraries no package is known for)."""
    column = 0 if family == DEBIAN else 1
    packages = [PACKAGES[name][column] for name in libraries if name in PACKAGES]
    return list(dict.fromkeys(packages)), [name for name in libraries if name not in PACKAGES]


def system_family(os_release: str | None = None) -> str | None:
    """DEBIAN or FEDORA from /etc/os-release (ID and ID_LIKE), else from the package tool present."""
    if os_release is None:
        try:
            os_release = Path("/etc/os-release").read_text(encoding="utf-8", errors="replace")
        except OSError:
            os_release = ""
    ids: set[str] = set()
    for key in ("ID", "ID_LIKE"):
        match = re.search(rf"^{key}=\"?([^\"\n]*)\"?$", os_release, re.M)
        ids.update(match.group(1).split() if match else [])
    if ids & {"debian", "ubuntu"}:
        return DEBIAN
    if ids & {"fedora", "rhel", "centos"}:
        return FEDORA
    if shutil.which("apt-get"):
        return DEBIAN
    if shutil.which("dnf"):
        return FEDORA
    return None


def uses_xcb(environ: Mapping[str, str]) -> bool:
    """Whether Qt will load the xcb plugin: not when QT_QPA_PLATFORM names another, nor on Wayland alone."""
    platform = environ.get("QT_QPA_PLATFORM", "").strip()
    if platform:
        return platform.split(";")[0].strip().startswith("xcb")
    wayland = bool(environ.get("WAYLAND_DISPLAY"))
    if wayland and not environ.get("DISPLAY"):
        return False
    # In a Wayland session Qt 6 picks its wayland plugin even where XWayland also offers a DISPLAY.
    return not (wayland and environ.get("XDG_SESSION_TYPE") == "wayland")


def find_missing(plugin: Path | None = None, environ: Mapping[str, str] | None = None) -> Missing | None:
    """What the xcb plugin lacks on this system, or None when nothing (or when ``ldd`` is not there to ask)."""
    plugin = plugin or xcb_plugin()
    output = ldd(plugin, environ) if plugin is not None else None
    if plugin is None or output is None:
        return None
    libraries = missing_sonames(output)
    if not libraries:
        return None
    family = system_family()
    packages, unknown = packages_for(libraries, family or DEBIAN)
    return Missing(plugin, tuple(libraries), tuple(packages), tuple(unknown), family)


def can_install() -> list[str] | None:
    """The prefix that runs a command as root without a password: [] as root, ["sudo", "-n"], else None."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=30).returncode == 0:
        return ["sudo", "-n"]
    return None


def install(missing: Missing, prefix: list[str]) -> bool:
    """Install the packages with apt-get (refreshing its lists once if they are stale) or dnf; True if it worked."""
    if missing.family == DEBIAN and shutil.which("apt-get"):
        command = [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
                   "--no-install-recommends", *missing.packages]
        retry_after = [*prefix, "apt-get", "update", "-q"]
    elif missing.family == FEDORA and shutil.which("dnf"):
        command, retry_after = [*prefix, "dnf", "install", "-y", "-q", *missing.packages], None
    else:
        return False
    shown = [word for word in command[len(prefix):] if word not in ("env", "DEBIAN_FRONTEND=noninteractive")]
    print(f"cnnviewer: installing what Qt's X11 platform plugin needs: {shlex.join(shown)}", flush=True)
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0 and retry_after:  # a fresh system's package lists may be empty or stale
        subprocess.run(retry_after, capture_output=True, text=True)
        proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        print(f"cnnviewer: the install failed: {last[0]}", file=sys.stderr)
    return proc.returncode == 0


def check(install_allowed: bool, environ: Mapping[str, str] | None = None, plugin: Path | None = None) -> int:
    """0 when the window can load the xcb plugin (after installing what it lacks, if allowed); 1 after the advice."""
    environ = os.environ if environ is None else environ
    if not uses_xcb(environ):
        return 0
    missing = find_missing(plugin, environ)
    if missing is None:
        return 0
    prefix = can_install() if install_allowed and missing.packages else None
    if prefix is not None and install(missing, prefix):
        missing = find_missing(plugin, environ)  # a package may bring a library that needs yet another
        if missing is None:
            return 0
    print(missing.advice(), file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--install", action="store_true",
                        help="install what is missing when running as root or with passwordless sudo")
    parser.add_argument("--plugin", type=Path, help="the plugin to check (default: the one cnnviewer loads)")
    args = parser.parse_args(argv)
    return check(install_allowed=args.install, plugin=args.plugin)


if __name__ == "__main__":
    sys.exit(main())
