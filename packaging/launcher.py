"""The bundle's entry point: the same `cnnviewer` command as a pip install gives."""

import os
import sys

import qt_system_libs

from cnnviewer.cli import COMMANDS, main


def opens_window(argv: list[str]) -> bool:
    """Whether this command line opens the window (as cnnviewer.cli reads it): bare, `gui`, or a path."""
    return not argv or argv[0] == "gui" or (argv[0] not in COMMANDS and not argv[0].startswith("-"))


if __name__ == "__main__":
    # The bundle carries the X11 libraries its build machine had (packaging/cnnviewer.spec); where one is
    # still missing here, one line with the install command instead of Qt's misleading abort.
    if opens_window(sys.argv[1:]) and qt_system_libs.check(install_allowed=False, environ=os.environ):
        sys.exit(1)
    sys.exit(main())
