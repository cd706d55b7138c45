"""The bundle's entry point: the same `cnnviewer` command as a pip install gives."""

import sys

from cnnviewer.cli import main

if __name__ == "__main__":
    sys.exit(main())
