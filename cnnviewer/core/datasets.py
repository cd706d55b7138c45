"""Labelled folders: one sub-folder per class, or a labels.csv; labels matched to ImageNet-1k classes."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cnnviewer.core.errors import CnnviewerError
from cnnviewer.core.images import is_image_path
from cnnviewer.core.labels import synsets

#: How many folders deep a class folder is read. Real sets nest a level or two; the limit keeps a
#: pathological tree (a thousand nested folders) a listed problem instead of a long walk.
MAX_DEPTH = 32

#: How many files a problem sentence names before it says "...".
_SHOWN = 5


class DatasetError(CnnviewerError):
    """A folder that cannot be read as a labelled set."""


@dataclass(frozen=True)
class LabelledImage:
    path: str
    label: str  # as written by the user (folder name or CSV cell)
    index: int  # the ImageNet-1k class it matched


@dataclass
class LabelledSet:
    """The images whose labels matched exactly one class, and what will not be used, with its files.

    Every file is counted once, however many times or ways it is named. Paths are kept as reached
    from the folder the user gave (``root / name``), never rewritten to where links lead.
    """

    root: str
    layout: str  # "folders" or "labels.csv"
    images: list[LabelledImage] = field(default_factory=list)
    unmatched: dict[str, list[str]] = field(default_factory=dict)  # label -> files
    ambiguous: dict[str, tuple[list[int], list[str]]] = field(default_factory=dict)  # label -> (classes, files)
    conflicting: dict[str, list[str]] = field(default_factory=dict)  # file -> the different labels it was given
    repeated: list[str] = field(default_factory=list)  # files named more than once with one meaning: counted once
    outside: list[str] = field(default_factory=list)  # entries that lead outside the folder (not read)
    missing: list[str] = field(default_factory=list)  # files named that do not exist
    unread_folders: dict[str, str] = field(default_factory=dict)  # folder -> why it was not read

    @property
    def left_out(self) -> int:
        """How many named files will not be used: their label, their place or their absence."""
        return (sum(len(files) for files in self.unmatched.values())
                + sum(len(files) for _, files in self.ambiguous.values())
                + len(self.conflicting) + len(self.outside) + len(self.missing))

    @property
    def problems(self) -> list[str]:
        """One sentence per kind of file that will not be used (or is counted once), naming its files."""
        lines = []
        for label, files in sorted(self.unmatched.items()):
            lines.append(f"label '{label}' matches no ImageNet-1k class ({len(files)} file(s): "
                         f"{_names(os.path.basename(f) for f in files)})")
        for label, (classes, files) in sorted(self.ambiguous.items()):
            names = ", ".join(f"{i} {synsets()[i].name}" for i in classes)
            lines.append(f"label '{label}' matches several classes ({names}); use the index or WordNet id "
                         f"({len(files)} file(s): {_names(os.path.basename(f) for f in files)})")
        if self.conflicting:
            shown = (f"{self._shown(path)} ({', '.join(repr(label) for label in labels)})"
                     for path, labels in self.conflicting.items())
            lines.append(f"{len(self.conflicting)} file(s) are given conflicting labels and are left out: "
                         f"{_names(shown, len(self.conflicting))}")
        for paths, what in ((self.repeated, "file(s) are named more than once with the same label and are "
                             "counted once"),
                            (self.outside, f"path(s) lead outside {self.root} and are not read"),
                            (self.missing, "file(s) do not exist")):
            if paths:
                lines.append(f"{len(paths)} {what}: {_names(map(self._shown, paths), len(paths))}")
        if self.unread_folders:
            shown = (f"{self._shown(path)} ({why})" for path, why in self.unread_folders.items())
            lines.append(f"{len(self.unread_folders)} folder(s) are not read: "
                         f"{_names(shown, len(self.unread_folders))}")
        return lines

    def _shown(self, path: str) -> str:
        """A path as the user would write it inside the folder; as it is when it is not inside."""
        relative = os.path.relpath(path, self.root)
        return path if relative == ".." or relative.startswith(".." + os.sep) else relative


def _names(names: Iterable[str], total: int | None = None) -> str:
    names = list(names)
    total = len(names) if total is None else total
    return ", ".join(names[:_SHOWN]) + (", ..." if total > _SHOWN else "")


def normalise(label: str) -> str:
    """Case-insensitive, with ``_`` and ``-`` read as spaces."""
    return re.sub(r"\s+", " ", label.replace("_", " ").replace("-", " ")).strip().casefold()


@lru_cache(maxsize=1)
def _label_table() -> dict[str, frozenset[int]]:
    table: dict[str, set[int]] = {}
    for synset in synsets():
        keys = {synset.name, synset.wnid, str(synset.index), *synset.lemmas}
        for key in keys:
            table.setdefault(normalise(key), set()).add(synset.index)
    return {key: frozenset(value) for key, value in table.items()}


def match_label(label: str) -> frozenset[int]:
    """Every class the label can mean: its name, any WordNet lemma, its WordNet id, or its index."""
    return _label_table().get(normalise(label), frozenset())


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def load_labelled_folder(folder: str | os.PathLike[str]) -> LabelledSet:
    """Read a folder laid out as one sub-folder per class, or holding a ``labels.csv`` (file,label).

    Only files under the folder are used: a labels.csv row or a link that leads elsewhere, a file
    that does not exist and a file given conflicting labels are listed in ``problems``, not read.
    """
    root = Path(os.fspath(folder))
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    root_real = os.path.realpath(root)
    csv_path = root / "labels.csv"
    layout = "labels.csv" if csv_path.is_file() else "folders"
    result = LabelledSet(root=str(root), layout=layout)
    # (path as reached from root, label, real path): the real path says which file it is.
    if layout == "labels.csv":
        named = _read_labels_csv(root, root_real, csv_path, result)
    else:
        named = _scan_class_folders(root, root_real, result)
    if not named and not (result.outside or result.missing or result.unread_folders):
        raise DatasetError(
            f"{root}: no labelled images found; use one sub-folder per class, or a labels.csv with "
            "columns file,label")
    _sort_labels(named, result)
    return result


def _read_labels_csv(root: Path, root_real: str, csv_path: Path,
                     result: LabelledSet) -> list[tuple[str, str, str]]:
    named: list[tuple[str, str, str]] = []
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"file", "label"} <= {f.strip() for f in reader.fieldnames}:
                raise DatasetError(f"{csv_path}: needs the columns 'file' and 'label'")
            for row in reader:
                row = {k.strip(): (v or "").strip() for k, v in row.items() if isinstance(k, str)}
                name = row.get("file")
                if not name:
                    continue
                path = str(root / name)
                try:
                    real = os.path.realpath(path)
                    if not _inside(real, root_real):
                        result.outside.append(path)
                        continue
                    os.stat(real)
                except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the name
                    result.missing.append(path)
                    continue
                except OSError:
                    pass  # unreadable, a link loop...: the image loader says why when the run reaches it
                named.append((path, row.get("label", ""), real))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{csv_path}: cannot be read ({exc})") from exc
    return named


def _scan_class_folders(root: Path, root_real: str, result: LabelledSet) -> list[tuple[str, str, str]]:
    try:
        top = _entries(root, root_real)
    except OSError as exc:
        raise DatasetError(f"{root}: cannot be read ({exc.strerror or exc})") from exc
    named: list[tuple[str, str, str]] = []
    for path, real, is_dir, is_link in top:
        if is_dir and _enter(path, real, is_link, root_real, root_real, {root_real}, 0, result):
            named.extend((found, path.name, found_real)
                         for found, found_real in _walk_class(path, real, root_real, result))
    return named


def _entries(folder: Path, folder_real: str) -> list[tuple[Path, str, bool, bool]]:
    """(path, real path, is a folder, is a link) of the folders, links and image-named files in
    ``folder``, by name. Only links cost a look-up: 100,000 other files are passed over from the listing."""
    rows = []
    with os.scandir(folder) as scan:
        for entry in scan:
            name = entry.name
            try:
                if entry.is_symlink():
                    real = os.path.realpath(os.path.join(folder, name))
                    rows.append((name, real, os.path.isdir(real), True))
                elif entry.is_dir(follow_symlinks=False):
                    rows.append((name, os.path.join(folder_real, name), True, False))
                elif is_image_path(name):
                    rows.append((name, os.path.join(folder_real, name), False, False))
            except (OSError, ValueError):
                continue  # vanished while being listed
    rows.sort()
    return [(folder / name, real, is_dir, is_link) for name, real, is_dir, is_link in rows]


def _enter(path: Path, real: str, is_link: bool, parent_real: str, root_real: str, visited: set[str], depth: int,
           result: LabelledSet) -> bool:
    """Whether to read the folder ``path``: links are followed only while they stay inside the root,
    each folder is read once per class, and no deeper than MAX_DEPTH."""
    if not _inside(real, root_real):
        result.outside.append(str(path))
        return False
    if real in visited:
        if is_link and _inside(parent_real, real):
            result.unread_folders[str(path)] = "a link back to a folder above it"
        return False
    if depth >= MAX_DEPTH:
        result.unread_folders[str(path)] = f"more than {MAX_DEPTH} folders deep"
        return False
    return True


def _walk_class(class_path: Path, class_real: str, root_real: str, result: LabelledSet) -> list[tuple[str, str]]:
    """(path, real path) of every image-named file under a class folder, sorted; iterative, never recursive."""
    found = []
    visited = {root_real, class_real}
    stack = [(class_path, class_real, 1)]
    while stack:
        folder, folder_real, depth = stack.pop()
        try:
            entries = _entries(folder, folder_real)
        except OSError as exc:
            result.unread_folders[str(folder)] = f"cannot be read: {exc.strerror or exc}"
            continue
        for path, real, is_dir, is_link in entries:
            if is_dir:
                if _enter(path, real, is_link, folder_real, root_real, visited, depth, result):
                    visited.add(real)
                    stack.append((path, real, depth + 1))
            elif not is_image_path(path.name):
                continue
            elif not _inside(real, root_real):
                result.outside.append(str(path))
            elif is_link and not os.path.exists(real):
                result.missing.append(str(path))
            else:
                found.append((str(path), real))
    return sorted(found)


def _sort_labels(named: list[tuple[str, str, str]], result: LabelledSet) -> None:
    """Each file once: its labels agree (it is used, or listed for its label) or conflict (left out)."""
    labels_of: dict[str, tuple[str, list[str]]] = {}  # real path -> (first path, labels in order)
    for path, label, real in named:
        labels_of.setdefault(real, (path, []))[1].append(label)
    for path, labels in labels_of.values():
        distinct = list(dict.fromkeys(labels))
        if len({match_label(label) for label in distinct}) > 1:
            result.conflicting[path] = distinct
            continue
        if len(labels) > 1:
            result.repeated.append(path)
        label = distinct[0]
        classes = match_label(label)
        if len(classes) == 1:
            result.images.append(LabelledImage(path, label, next(iter(classes))))
        elif not classes:
            result.unmatched.setdefault(label, []).append(path)
        else:
            result.ambiguous.setdefault(label, (sorted(classes), []))[1].append(path)
