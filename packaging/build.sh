#!/usr/bin/env bash
# Build dist/cnnviewer/ (a one-folder PyInstaller bundle) from the project's venv.
# Usage: bash packaging/build.sh [VENV]   (default .venv; `make install` makes it)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pyinstaller>=6.10"
"$VENV/bin/python" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/cnnviewer.spec
du -sh dist/cnnviewer | awk '{print "bundle size: " $1}'
