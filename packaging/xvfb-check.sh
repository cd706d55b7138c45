#!/usr/bin/env bash
# A real display: under Xvfb and openbox, with Qt's xcb platform, open the installed app and the bundled
# app on a sample photo (a fresh home: the first start), wait until its top-5 is on the screen (read back
# by OCR from a screenshot of the whole X screen), and keep the screenshots.
#
# Usage: bash packaging/xvfb-check.sh [OUT_DIR]
#            the check; OUT_DIR (default test-artifacts/xvfb) gets installed.png and bundle.png
#        bash packaging/xvfb-check.sh --start-time N COMMAND...
#            N times: seconds from starting COMMAND to its window mapped on the screen, then the spread
# Needs: xvfb, openbox, xdotool, imagemagick (import), tesseract-ocr; .ci/run installs them with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PY:-$ROOT/.venv/bin/python}
PHOTO=$ROOT/resources/samples/coffee.jpg
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "xvfb check FAILED: $*" >&2; exit 1; }

for tool in Xvfb openbox xdotool import tesseract; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (Debian: xvfb openbox xdotool imagemagick tesseract-ocr)"
done

start_display() {
    local n
    for n in $(seq 90 130); do
        [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ] || break
    done
    Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
    PIDS+=($!)
    export DISPLAY=":$n"
    for _ in $(seq 100); do [ -e "/tmp/.X11-unix/X$n" ] && break; sleep 0.05; done
    [ -e "/tmp/.X11-unix/X$n" ] || fail "Xvfb did not start: $(tail -1 "$WORK/xvfb.log")"
    openbox >"$WORK/openbox.log" 2>&1 &
    PIDS+=($!)
    sleep 0.5
}

now() { date +%s.%N; }

# Start "$@" in a fresh home (a first start); return once its main window is mapped, with APP_PID set
# and START_SECONDS the seconds from the command to the window on the screen.
APP_PID=
START_SECONDS=
start_app() {
    local home=$1; shift
    mkdir -p "$home"
    local t0; t0=$(now)
    env -i HOME="$home" PATH=/usr/bin:/bin DISPLAY="$DISPLAY" QT_QPA_PLATFORM=xcb LANG=C.UTF-8 "$@" \
        >"$home.log" 2>&1 &
    APP_PID=$!
    PIDS+=("$APP_PID")
    local deadline=$((SECONDS + 120))
    until xdotool search --onlyvisible --name '^cnnviewer$' >/dev/null 2>&1; do
        kill -0 "$APP_PID" 2>/dev/null || fail "$* ended before its window showed: $(tail -3 "$home.log")"
        [ $SECONDS -lt $deadline ] || fail "no cnnviewer window within 120 s: $(tail -3 "$home.log")"
        sleep 0.05
    done
    START_SECONDS=$(awk -v a="$(now)" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
}

# Quit as a user does (Ctrl+Q in the window); the process must then end.
stop_app() {
    # Ctrl+Q closes the window between the key's press and its release, and xdotool can then lose the
    # release (chained after `search` it dies on BadWindow; alone it lost it in 2 of 4 tries): the X server
    # auto-repeats the held Ctrl+Q into the next app's window, which quits at once. So the release is sent
    # again once the app has ended.
    xdotool search --onlyvisible --name '^cnnviewer$' windowactivate --sync %1 >/dev/null 2>&1 || true
    xdotool key ctrl+q >/dev/null 2>&1 || true
    for _ in $(seq 600); do kill -0 "$APP_PID" 2>/dev/null || break; sleep 0.1; done
    xdotool keyup ctrl+q >/dev/null 2>&1 || true  # whatever happened above, no key stays held down
    if kill -0 "$APP_PID" 2>/dev/null; then
        echo "$APP_PID did not quit on Ctrl+Q within 60 s; killed" >&2
        kill "$APP_PID" 2>/dev/null || true
    fi
    wait "$APP_PID" 2>/dev/null || true
}

if [ "${1:-}" = "--start-time" ]; then
    runs=$2; shift 2
    start_display
    times=()
    for i in $(seq "$runs"); do
        start_app "$WORK/home-$i" "$@"
        echo "run $i: $START_SECONDS s to the window"
        times+=("$START_SECONDS")
        stop_app
        sleep 1
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {printf "min %.2f s, median %.2f s, max %.2f s over %d runs\n", a[1], a[int((NR + 1) / 2)], a[NR], NR}'
    exit 0
fi

OUT=${1:-$ROOT/test-artifacts/xvfb}
mkdir -p "$OUT"
start_display

# What the window must show: the top-5 of the same photo from the command line (no window involved),
# computed while the first window starts.
"$PY" -m cnnviewer classify "$PHOTO" --model efficientnet_lite0 --format json >"$WORK/expected.json" &
EXPECTED_PID=$!
PIDS+=("$EXPECTED_PID")

check_app() {
    local label=$1; shift
    start_app "$WORK/$label-home" "$@"
    local seconds=$START_SECONDS
    if [ -n "$EXPECTED_PID" ]; then
        wait "$EXPECTED_PID" || fail "cnnviewer classify $PHOTO"
        EXPECTED_PID=
    fi
    local deadline=$((SECONDS + 90)) shot="$OUT/$label.png" verdict="" last_read="" now_shown=""
    while [ $SECONDS -lt $deadline ]; do
        sleep 2
        if ! kill -0 "$APP_PID" 2>/dev/null; then
            local status=0
            wait "$APP_PID" || status=$?
            cp "$WORK/$label-home/.local/state/cnnviewer/cnnviewer.log" "$OUT/$label-app.log" 2>/dev/null || true
            fail "$label: the app ended (exit status $status) before its top-5 was read off the screen (last screenshot $shot; log: $(tail -2 "$WORK/$label-home.log"))"
        fi
        import -window root "$shot" 2>/dev/null || continue
        # OCR only a screen that changed since the last reading: it costs seconds of the CPU the app needs.
        now_shown=$(md5sum <"$shot")
        [ "$now_shown" = "$last_read" ] && continue
        last_read=$now_shown
        verdict=$("$PY" - "$shot" "$WORK/expected.json" "$WORK/$label-ocr" <<'PY'
import json, re, subprocess, sys
from PIL import Image, ImageStat

shot, expected, ocr = sys.argv[1:4]
image = Image.open(shot).convert("RGB")
spread = max(ImageStat.Stat(image).stddev)
colours = len(image.getcolors(1 << 24))
if spread < 20 or colours < 64:
    print(f"blank: standard deviation {spread:.1f}, {colours} colours")
    sys.exit()
# Tesseract reads the small text of a desktop screen far better at twice the size, in grey.
image.convert("L").resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS).save(ocr + ".png")
subprocess.run(["tesseract", ocr + ".png", ocr, "--psm", "11"], capture_output=True, check=True)
seen = re.sub(r"[^a-z0-9]", "", open(ocr + ".txt").read().lower())
names = [p["name"] for p in json.load(open(expected))[0]["predictions"]]
missing = [n for n in names if re.sub(r"[^a-z0-9]", "", n.lower()) not in seen]
print(f"missing on screen: {', '.join(missing)}" if missing else f"ok: {', '.join(names)} on screen")
PY
)
        case $verdict in ok:*) break ;; esac
    done
    stop_app
    case $verdict in
        ok:*) printf '%s: window after %.1f s; %s; screenshot %s\n' "$label" "$seconds" "${verdict#ok: }" "$shot" ;;
        *) cp "$WORK/$label-ocr.txt" "$OUT/$label-ocr.txt" 2>/dev/null || true
           cp "$WORK/$label-home/.local/state/cnnviewer/cnnviewer.log" "$OUT/$label-app.log" 2>/dev/null || true
           fail "$label: ${verdict:-no screenshot} after 90 s (screenshot $shot; log: $(tail -2 "$WORK/$label-home.log"))" ;;
    esac
}

check_app installed "$ROOT/.venv/bin/cnnviewer" "$PHOTO"
if [ -x "$ROOT/dist/cnnviewer/cnnviewer" ]; then
    check_app bundle "$ROOT/dist/cnnviewer/cnnviewer" "$PHOTO"
else
    fail "no bundle at dist/cnnviewer/cnnviewer (bash packaging/build.sh makes it)"
fi
echo "xvfb check passed"
