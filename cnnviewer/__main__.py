"""Entry point for ``python -m cnnviewer``."""

import sys

from cnnviewer.cli import main

if __name__ == "__main__":
    sys.exit(main())
