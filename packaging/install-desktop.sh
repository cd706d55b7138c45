#!/usr/bin/env bash
# Put a built bundle on this user's desktop: a `cnnviewer` command, the menu entry, the icon,
# and cnnviewer among the applications offered for images ("Open with").
# Usage: bash packaging/install-desktop.sh [BUNDLE_DIR]   (default dist/cnnviewer)
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=$(realpath "${1:-dist/cnnviewer}")
[ -x "$BUNDLE/cnnviewer" ] || { echo "no bundle at $BUNDLE: run packaging/build.sh first" >&2; exit 1; }
mkdir -p "$HOME/.local/bin"
ln -sf "$BUNDLE/cnnviewer" "$HOME/.local/bin/cnnviewer"
xdg-icon-resource install --novendor --size 256 resources/cnnviewer.png cnnviewer
xdg-desktop-menu install --novendor packaging/cnnviewer.desktop
# Offer cnnviewer for every image type it reads; make it the default only when asked to.
if [ "${CNNVIEWER_DEFAULT_FOR_IMAGES:-0}" = 1 ]; then
    for mime in $(grep '^MimeType=' packaging/cnnviewer.desktop | cut -d= -f2 | tr ';' ' '); do
        xdg-mime default cnnviewer.desktop "$mime"
    done
fi
echo "installed: ~/.local/bin/cnnviewer -> $BUNDLE/cnnviewer (make sure ~/.local/bin is on PATH)"
