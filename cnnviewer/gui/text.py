"""Untrusted text (file and folder names, labels, report fields, error sentences) shown as the text it is."""

from __future__ import annotations

import html

from PySide6.QtGui import Qt
from PySide6.QtWidgets import QLabel, QWidget

# A label in Qt's default format renders anything that looks like HTML as HTML: a file named
# "<h1>FAKE RESULT</h1>.jpg" would print a headline, and <img src=...> would load a local file.


def plain_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    """A QLabel that shows its text as plain text, whatever it contains."""
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    return label


def make_plain(*labels: QLabel) -> None:
    """Switch existing labels to plain text (for labels that show untrusted text)."""
    for label in labels:
        label.setTextFormat(Qt.TextFormat.PlainText)


def escape(text: object) -> str:
    """Untrusted text inside a rich-text label of ours (``f"<b>{escape(name)}</b>"``)."""
    return html.escape(str(text), quote=False)


def tooltip(text: object) -> str:
    """A tooltip that shows ``text`` as it is: Qt shows a tooltip that looks like HTML as HTML, and has
    no plain-text switch for tooltips, so the text is given as escaped rich text."""
    return Qt.convertFromPlainText(str(text), Qt.WhiteSpaceMode.WhiteSpaceNormal)
