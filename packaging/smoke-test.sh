#!/usr/bin/env bash
# Build the bundle and run the bundled executable the way a user would, with no venv on PATH:
# --self-test, classify a real photo, and a small benchmark; check what they print and write.
# Usage: bash packaging/smoke-test.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=$(realpath ../shared/datasets)
[ "${1:-}" = "--no-build" ] || bash packaging/build.sh
EXE="$ROOT/dist/cnnviewer/cnnviewer"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# A clean environment: no venv, no PYTHONPATH, a fresh HOME; only the bundle.
run() { env -i HOME="$WORK/home" PATH=/usr/bin:/bin QT_QPA_PLATFORM=offscreen LANG=C.UTF-8 "$EXE" "$@"; }
fail() { echo "smoke test FAILED: $*" >&2; exit 1; }

run --version | grep -q '^cnnviewer ' || fail "--version"
run --self-test "$WORK/shots" | tee "$WORK/self-test.txt"
grep -q '^self-test passed' "$WORK/self-test.txt" || fail "--self-test"
[ -s "$WORK/shots/self-test-window.png" ] || fail "no screenshot from --self-test"

run classify "$SHARED/photos-13/polar_bear.jpg" --format json > "$WORK/classify.json"
python3 - "$WORK/classify.json" <<'PY' || fail "classify polar_bear.jpg"
import json, sys
rows = json.load(open(sys.argv[1]))
top = rows[0]["predictions"][0]
assert rows[0]["error"] is None and top["index"] == 296 and top["name"] == "ice bear", rows
print(f"classify: {top['name']} {top['probability']:.3f}")
PY
# Again: auto's choice and the model's export are kept now (with ONNX Runtime bundled, no torch is loaded).
run classify "$SHARED/photos-13/polar_bear.jpg" --format json > "$WORK/classify-again.json"
python3 - "$WORK/classify.json" "$WORK/classify-again.json" <<'PY' || fail "classify polar_bear.jpg a second time"
import json, sys
first, again = (json.load(open(name))[0] for name in sys.argv[1:3])
assert again["way"] == first["way"] and first["way"].startswith("auto: "), (first["way"], again["way"])
assert [p["index"] for p in again["predictions"]] == [p["index"] for p in first["predictions"]], again
print(f"classify again: {again['predictions'][0]['name']}, run as {again['way']}")
PY

run bench "$SHARED/photos-13" --models efficientnet_lite0 --limit 4 --batch-size 2 --out "$WORK/bench" > "$WORK/bench.txt"
python3 - "$WORK/bench" <<'PY' || fail "bench"
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
report = json.load(open(out / "report.json"))
model = report["models"][0]
assert model["name"] == "efficientnet_lite0" and model["images"] == 4 and model["top1"] >= 0.75, model
assert (out / "results.csv").read_text().count("\n") == 5
# The charts are drawn by matplotlib inside the bundle: a missing data file or backend shows here.
for chart in ("accuracy", "throughput", "memory", "latency", "accuracy_vs_latency"):
    assert (out / f"{chart}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", chart
    assert b"<svg" in (out / f"{chart}.svg").read_bytes()[:2000], chart
html = (out / "report.html").read_text(encoding="utf-8")
assert "<svg" in html and "efficientnet_lite0" in html
print(f"bench: {model['images']} images, top-1 {model['top1']:.2f}, {model['throughput_ips']:.1f} img/s")
PY
echo "bundle: $(du -sh "$ROOT/dist/cnnviewer" | cut -f1) in $ROOT/dist/cnnviewer"
echo "smoke test passed"
