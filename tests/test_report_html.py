"""report.html: one file to mail, charts inline, thumbnails of mistakes, every name escaped, nothing fetched."""

from __future__ import annotations

import base64
import copy
import io
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from cnnviewer.core.labels import imagenet_categories
from cnnviewer.core.report import EarlierRunError, prepare_run_folder, write_all


class Links(HTMLParser):
    """Every src and href of a page, and the text of its <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        self.links += [value or "" for name, value in attrs if name in ("src", "href")]


def mistakes(report) -> list:
    return [row for row in report.images if any(top and top[0] != row.truth for top in row.top5.values())]


def test_report_html_is_self_contained(tmp_path: Path, photos_13_run) -> None:
    report = copy.deepcopy(photos_13_run[0])
    written = write_all(report, tmp_path)
    text = written["html"].read_text(encoding="utf-8")
    assert text.count("<svg") == 5  # accuracy, throughput, memory, latency, accuracy against latency
    parser = Links()
    parser.feed(text)
    wrong = mistakes(report)
    assert 1 <= len(wrong) <= 30
    thumbnails = [link for link in parser.links if link.startswith("data:image/jpeg;base64,")]
    assert len(thumbnails) == len(wrong) and parser.links == thumbnails  # nothing from a server or the disk
    assert parser.scripts == 0
    for link in thumbnails:
        with Image.open(io.BytesIO(base64.b64decode(link.split(",", 1)[1]))) as image:
            assert image.format == "JPEG" and max(image.size) <= 96
    names = imagenet_categories()
    assert "Per-class accuracy" in text and "Most confused pairs" in text
    for pairs in report.confusions.values():
        for truth, predicted, _count in pairs[:1]:
            assert names[truth].replace("'", "&#x27;") in text and names[predicted].replace("'", "&#x27;") in text
    for m in report.models:
        assert m.name in text


def test_names_in_report_html_are_escaped(tmp_path: Path, photos_13_run) -> None:
    report = copy.deepcopy(photos_13_run[0])
    row = mistakes(report)[0]
    hostile = tmp_path / "photos" / "<script>alert(1).jpg"  # no "/": that would be a folder
    hostile.parent.mkdir()
    shutil.copyfile(row.file, hostile)  # a real photo under a name that is also markup
    row.file = str(hostile)
    report.root = '<img src="http://example.com/x.png">'
    report.skipped = [{"file": "<b>bold</b>.jpg", "reason": "<i>not an image</i>"}]
    text = write_all(report, tmp_path / "out")["html"].read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>bold" not in text and "<i>not" not in text
    assert "&lt;script&gt;alert(1).jpg" in text
    assert "&lt;img src=&quot;http://example.com/x.png&quot;&gt;" in text
    parser = Links()
    parser.feed(text)
    assert not [link for link in parser.links if not link.startswith("data:image/jpeg;base64,")]
    assert len(parser.links) == len(mistakes(report))  # the renamed photo has its thumbnail too


def test_a_mistake_whose_file_is_gone_is_left_out_with_a_line(tmp_path: Path, photos_13_run) -> None:
    report = copy.deepcopy(photos_13_run[0])
    wrong = mistakes(report)
    wrong[0].file = str(tmp_path / "moved away.jpg")
    text = write_all(report, tmp_path / "out")["html"].read_text(encoding="utf-8")
    assert text.count('src="data:image/jpeg;base64,') == len(wrong) - 1
    assert "1 image(s) could not be shown: the files no longer load" in text


def test_a_rerun_with_replace_removes_the_new_files_too(tmp_path: Path, photos_13_run) -> None:
    written = write_all(copy.deepcopy(photos_13_run[0]), tmp_path)
    (tmp_path / "accuracy_top1.png").write_bytes(b"a chart of an earlier version")
    assert {"report.html", "accuracy.svg", "latency.png"} <= {p.name for p in tmp_path.iterdir()}
    for name in ("report.json", "report.md"):
        (tmp_path / name).unlink()
    with pytest.raises(EarlierRunError) as caught:  # report.html alone still marks an earlier run
        prepare_run_folder(tmp_path)
    assert "report.html" in str(caught.value)
    prepare_run_folder(tmp_path, overwrite=True)
    assert not written["html"].exists() and list(tmp_path.iterdir()) == []
