"""Every file cnnviewer writes: through links, never over devices or earlier runs, and untrusted names kept as text."""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviewer.core.benchmark import BenchmarkReport, ImageRow, ModelResult
from cnnviewer.core.errors import OutputError
from cnnviewer.core.files import atomic_write, output_target
from cnnviewer.core.report import EarlierRunError, ResultsCsv, prepare_run_folder, write_all
from cnnviewer.core.text import csv_cell, json_text, markdown_code, markdown_text, printable
from tests.helpers import PHOTOS_13, cli

# Names people and attackers give files: a formula, a non-UTF-8 byte, a forged line, HTML, Markdown, a
# terminal escape, a right-to-left override.
HOSTILE = ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", os.fsdecode(b"caf\xe9-\xff"),
           "a\ncnnviewer: forged line", "<img src=x onerror=alert(1)>", "``code`` | *b* _i_ [l](u) &amp;",
           "\x1b[31mred\x1b[0m", "evil\u202egnp.exe", "back\\slash", "\u0085next"]


def _device(path: Path) -> Path:
    """A character device (root) or, for anyone else, a FIFO: never a regular file."""
    if os.geteuid() == 0:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null's numbers, in tmp_path
    else:
        os.mkfifo(path)
    return path


def _write(data: bytes):
    return lambda handle: handle.write(data)


def test_outputs_write_through_links_and_never_replace_anything_but_a_regular_file(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    atomic_write(link, _write(b"new"))
    assert link.is_symlink() and real.read_text() == "new"  # written through, the link stays
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "made-by-the-write.png")
    atomic_write(dangling, _write(b"png"))
    assert dangling.is_symlink() and (tmp_path / "made-by-the-write.png").read_bytes() == b"png"

    device = _device(tmp_path / "null")
    folder = tmp_path / "folder"
    folder.mkdir()
    to_device = tmp_path / "to-device.png"
    to_device.symlink_to(device)
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    for target, reason in [(device, "is not a regular file"), (to_device, "is not a regular file"),
                           (folder, "is a folder"), (loop, "a symbolic link loop")]:
        with pytest.raises(OutputError) as caught:
            atomic_write(target, _write(b"x"))
        assert str(caught.value).startswith(f"{target}: ") and reason in str(caught.value)
    assert not stat.S_ISREG(os.stat(device).st_mode) and folder.is_dir() and list(folder.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary files left


def test_new_outputs_get_the_users_umask_and_replaced_ones_keep_mode_and_owner(tmp_path):
    old = os.umask(0o027)
    try:
        fresh = atomic_write(tmp_path / "fresh.md", _write(b"x"))
        csv_file = ResultsCsv(tmp_path / "results.csv")
        csv_file.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "results.csv").stat().st_mode) == 0o640
    kept = tmp_path / "kept.json"
    kept.write_text("{}")
    os.chmod(kept, 0o604)
    if os.geteuid() == 0:
        os.chown(kept, 65534, 65534)
    atomic_write(kept, _write(b"[]"))
    assert stat.S_IMODE(kept.stat().st_mode) == 0o604 and kept.read_text() == "[]"
    if os.geteuid() == 0:
        assert (kept.stat().st_uid, kept.stat().st_gid) == (65534, 65534)


def test_a_very_long_name_is_written(tmp_path):
    name = "é" * 120 + ".json"  # 245 bytes: a temporary name made by adding to it would be too long
    assert atomic_write(tmp_path / name, _write(b"{}")).read_bytes() == b"{}"


def test_results_csv_is_always_a_new_file_and_keeps_every_name(tmp_path):
    earlier = tmp_path / "results.csv"
    earlier.write_text("an earlier run\n")
    with pytest.raises(OutputError, match="results.csv: already exists"):
        ResultsCsv(earlier)
    assert earlier.read_text() == "an earlier run\n"
    with pytest.raises(OutputError, match="is not a regular file"):
        ResultsCsv(_device(tmp_path / "device.csv"))

    rows = [ImageRow(name, label, 954, {"m": [954, 1, 2, 3, 4]}, {"m": [0.9, 0.05, 0.02, 0.02, 0.01]})
            for name, label in zip(HOSTILE, reversed(HOSTILE), strict=True)]
    writer = ResultsCsv(tmp_path / "new" / "results.csv")
    writer.add("=model", rows)
    writer.close()
    data = (tmp_path / "new" / "results.csv").read_bytes()
    assert b"caf\xe9-\xff" in data  # the name's own bytes
    table = list(csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape"), newline="")))
    assert len(table) == 1 + len(HOSTILE)
    for cells, row in zip(table[1:], rows, strict=True):
        for cell, original in ((cells[0], row.file), (cells[1], row.label), (cells[4], "=model")):
            if original[0] in "=+-@\t\r":
                assert cell == "'" + original  # OWASP: never a live formula
            else:
                assert cell == original  # everything else exactly as it was
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cells in table for cell in cells)


def test_a_folder_holding_an_earlier_run_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("earlier")
    (out / "report.md").write_text("earlier")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(EarlierRunError, match="already holds an earlier run .report.md, results.csv."):
        prepare_run_folder(out)
    assert (out / "results.csv").read_text() == "earlier"
    made = prepare_run_folder(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and made.made == ()
    (out / "report.json").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        prepare_run_folder(out, overwrite=True)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(OutputError, match="a-file: is a file"):
        prepare_run_folder(tmp_path / "a-file")
    fresh = prepare_run_folder(tmp_path / "new" / "deeper")
    assert fresh.path.is_dir() and fresh.made == (tmp_path / "new", tmp_path / "new" / "deeper")
    fresh.remove_if_empty()
    assert not (tmp_path / "new").exists()


def _unescape(text: str) -> str:
    """The inverse of printable(), written separately: \\xNN below 0x80 is that character, above it the byte."""
    def one(match: re.Match[str]) -> str:
        code = match.group(0)
        if code == "\\\\":
            return "\\"
        if code in ("\\n", "\\r", "\\t"):
            return {"\\n": "\n", "\\r": "\r", "\\t": "\t"}[code]
        value = int(code[2:], 16)
        return chr(value) if code[1] == "u" or value < 0x80 else chr(0xDC00 + value)
    return re.sub(r"\\\\|\\[nrt]|\\x[0-9a-f]{2}|\\u[0-9a-f]{4}", one, text)


names = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(HOSTILE)


@settings(max_examples=300, deadline=None)
@given(names)
def test_printable_is_one_safe_line_that_maps_back_to_the_name(name):
    shown = printable(name)
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]", shown)
    shown.encode("utf-8")  # never a crash on a terminal or in a UTF-8 file
    assert _unescape(shown) == name


@settings(max_examples=300, deadline=None)
@given(st.lists(names, max_size=4))
def test_json_is_utf8_and_gives_back_the_same_names(values):
    text = json_text({"files": values})
    text.encode("utf-8")
    assert json.loads(text) == {"files": values}


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted():
    for text in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1", "\uff1d1"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("/photos/a.jpg") == "/photos/a.jpg" and csv_cell(-1.5) == -1.5


def _rendered_text(markdown_source: str) -> str:
    """HTML as a CommonMark renderer with GitHub's tables makes it (markdown-it-py, which rich brings)."""
    markdown_it = pytest.importorskip("markdown_it")
    return str(markdown_it.MarkdownIt("commonmark").enable("table").render(markdown_source))


def _words(text: str) -> list[str]:
    return text.split()


@settings(max_examples=300, deadline=None)
@given(names.filter(bool))
def test_markdown_shows_any_name_as_that_text(name):
    """Rendered, a name is exactly its printable() text: no tag, link, emphasis, code break-out, list or cell."""
    shown = printable(name)
    code = _rendered_text(f"- {markdown_code(name)}: x\n")
    assert code.startswith("<ul>\n<li><code>") and code.count("<code>") == 1, code
    assert html.unescape(code[len("<ul>\n<li><code>"): code.index("</code>")]) == shown
    for source, pattern in ((f"- {markdown_text(name)}\n", r"<li>(.*?)</li>"),
                            (f"- see {markdown_text(name)}\n", r"<li>(.*?)</li>"),
                            (f"| a | b |\n| --- | --- |\n| {markdown_text(name)} | end |\n", r"<td>(.*?)</td>")):
        rendered = _rendered_text(source)
        found = re.findall(pattern, rendered, re.S)
        assert found and "<" not in found[0].replace("&lt;", ""), rendered
        expected = shown if "see" not in source else "see " + shown
        # Markdown may trim or join white space; every other character comes out as written
        assert _words(html.unescape(found[0])) == _words(expected), rendered
        if pattern.startswith("<td>"):
            assert len(found) == 2 and found[1] == "end"


def test_the_markdown_report_keeps_hostile_names_as_text(tmp_path):
    report = BenchmarkReport(root=HOSTILE[7], config={}, environment={})
    report.models = [ModelResult(name="efficientnet_lite0", title="EfficientNet-Lite0", weights="w",
                                 error=f"{HOSTILE[8]}: cannot run")]
    report.skipped = [{"file": name, "reason": f"not an image ({name})"} for name in HOSTILE]
    report.label_problems = [f"label '{name}' matches no ImageNet-1k class" for name in HOSTILE]
    written = write_all(report, tmp_path)
    text = written["markdown"].read_bytes().decode("utf-8")  # valid UTF-8, whatever the names
    assert "\ncnnviewer: forged line" not in text and "\x1b" not in text and "\u202e" not in text
    rendered = _rendered_text(text)
    assert "<img" not in rendered and "<a " not in rendered and "<em>" not in rendered and "<b>" not in rendered
    for name in HOSTILE:
        assert html.escape(printable(name), quote=False) in rendered or printable(name).strip() in html.unescape(
            rendered)
    assert json.loads(written["json"].read_bytes().decode("utf-8"))["skipped"] == report.skipped


# -- the command line -----------------------------------------------------------------------------


def _cnnviewer(*args: str, cwd: Path, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    """``cnnviewer ARGS`` in this process, run from ``cwd`` under ``umask`` (both put back after)."""
    previous = os.umask(umask)
    try:
        with contextlib.chdir(cwd):
            return cli(*args)
    finally:
        os.umask(previous)


def test_classify_csv_never_carries_a_formula_and_the_table_keeps_one_line_per_name(tmp_path):
    photo = (PHOTOS_13 / "banana_0.jpg").read_bytes()
    names = ["=1+2.jpg", "@SUM(A1).jpg", "+x.jpg", "-x.jpg", "\tx.jpg", "a\nforged.jpg"]
    for name in names:
        (tmp_path / name).write_bytes(photo)
    (tmp_path / "=bad\x1b[2J.jpg").write_text("not a photo")
    proc = _cnnviewer("classify", "-f", "csv", "-k", "1", "-m", "efficientnet_lite0", "--", *names,
                      "=bad\x1b[2J.jpg", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout, newline="")))
    assert [row["file"] for row in rows] == ["'" + n if n[0] in "=+-@\t" else n for n in [*names, "=bad\x1b[2J.jpg"]]
    assert all(row["index"] == "954" for row in rows[:-1]) and rows[-1]["error"]
    # stderr: one line per bad file, its name escaped (a terminal never sees the clear-screen escape)
    assert "cnnviewer: =bad\\x1b[2J.jpg: " in proc.stderr and "\x1b" not in proc.stderr
    proc = _cnnviewer("classify", "-k", "1", "-m", "efficientnet_lite0", "--", "a\nforged.jpg", cwd=tmp_path)
    assert proc.returncode == 0 and "\na\\nforged.jpg\n" in proc.stdout and "\nforged.jpg" not in proc.stdout


def test_explain_writes_through_a_link_with_the_umask_and_refuses_devices_before_any_work(tmp_path):
    photo = str(PHOTOS_13 / "polar_bear.jpg")
    device = _device(tmp_path / "null")
    proc = _cnnviewer("explain", photo, "-m", "efficientnet_lite0", "--out", str(device), cwd=tmp_path)
    assert proc.returncode == 1 and f"{device}: is not a regular file" in proc.stderr, proc.stderr
    assert not stat.S_ISREG(os.stat(device).st_mode) and "Grad-CAM" not in proc.stdout
    for opacity in ("nan", "inf", "1.5", "-0.1"):
        proc = _cnnviewer("explain", photo, "--out", "o.png", "--opacity", opacity, cwd=tmp_path)
        assert proc.returncode == 2 and "--opacity: must be a number from 0 to 1" in proc.stderr
    assert not (tmp_path / "o.png").exists()
    link = tmp_path / "overlay.png"
    link.symlink_to(tmp_path / "real.png")
    proc = _cnnviewer("explain", photo, "-m", "efficientnet_lite0", "--out", str(link), "--heatmap", "heat.npy",
                      cwd=tmp_path, umask=0o002)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and (tmp_path / "real.png").read_bytes().startswith(b"\x89PNG")
    assert stat.S_IMODE((tmp_path / "real.png").stat().st_mode) == 0o664
    assert stat.S_IMODE((tmp_path / "heat.npy").stat().st_mode) == 0o664
    assert output_target(link) == tmp_path / "real.png"
