"""Untrusted text (file names, labels) made safe for each output: terminal lines, CSV cells, JSON, Markdown."""

from __future__ import annotations

import json
import re
from typing import Any

# Characters that would end a line, move the cursor, recolour or reorder a terminal line, or that stand for
# bytes which are not UTF-8 (os.fsdecode's surrogate escapes). The backslash is escaped too, so the escaped
# text maps back to exactly one name.
_UNPRINTABLE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8: show the byte itself
        return f"\\x{code - 0xDC00:02x}"
    # \xNN only below 0x80 (no undecodable byte is): C1 controls are \u0085, so no two inputs look alike
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` on one line with nothing a terminal would act on: control characters, line and bidi
    controls and non-UTF-8 bytes become backslash escapes (``\\n``, ``\\x1b``, ``\\u202e``, ``\\xe9`` for the
    byte 0xE9), ``\\`` becomes ``\\\\``; different texts never look the same."""
    return _UNPRINTABLE.sub(_escape, str(text))


# A cell starting with one of these is a formula to spreadsheets (OWASP "CSV injection"); the full-width
# forms are read as formulas too by some.
_FORMULA_START = tuple("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def csv_cell(value: object) -> object:
    """A CSV cell that no spreadsheet runs as a formula: text starting with = + - @ tab or CR gets a
    leading single quote (as OWASP recommends); numbers are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(data: object, **options: Any) -> str:
    """JSON that encodes as UTF-8 whatever the file names in it: non-UTF-8 bytes (surrogate escapes)
    are written as ``\\udcXX``, which json.loads turns back into the same name; all else stays readable."""
    text = json.dumps(data, ensure_ascii=False, **options)
    # A surrogate can only stand inside a JSON string, where its \\u escape means the same character.
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~#!])")
_BLOCK_START = re.compile(r"^( *)([-+=]|\d+(?=[.)]))")  # a list item, a setext underline, a numbered list


def markdown_text(text: object) -> str:
    """Text for a Markdown line or table cell that stays text: printable, then every character that
    Markdown or HTML would act on (emphasis, links, tags, entities, table pipes, a list marker at the
    start) backslash-escaped."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", printable(text))
    return _BLOCK_START.sub(lambda m: m.group(1) + (m.group(2) + "\\" if m.group(2)[0].isdigit()
                                                     else "\\" + m.group(2)), escaped)


def markdown_code(text: object) -> str:
    """``text`` as an inline code span that its own backticks cannot close (CommonMark: a longer fence)."""
    shown = printable(text)
    longest = max((len(run) for run in re.findall("`+", shown)), default=0)
    fence = "`" * (longest + 1)
    # CommonMark drops one space at each end when both ends have one; a fence must not touch a backtick
    pad = " " if shown[:1] == "`" or shown[-1:] == "`" or (shown[:1] == shown[-1:] == " " and shown.strip(" ")) else ""
    return f"{fence}{pad}{shown}{pad}{fence}"
