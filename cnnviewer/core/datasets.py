"""Labelled folders: one sub-folder per class, or a labels.csv; labels matched to ImageNet-1k classes."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cnnviewer.core.errors import CnnviewerError
from cnnviewer.core.images import is_image_path
from cnnviewer.core.labels import synsets


class DatasetError(CnnviewerError):
    """A folder that cannot be read as a labelled set."""


@dataclass(frozen=True)
class LabelledImage:
    path: str
    label: str  # as written by the user (folder name or CSV cell)
    index: int  # the ImageNet-1k class it matched


@dataclass
class LabelledSet:
    """The images whose labels matched exactly one class, and what did not match, with its files."""

    root: str
    layout: str  # "folders" or "labels.csv"
    images: list[LabelledImage] = field(default_factory=list)
    unmatched: dict[str, list[str]] = field(default_factory=dict)  # label -> files
    ambiguous: dict[str, tuple[list[int], list[str]]] = field(default_factory=dict)  # label -> (classes, files)

    @property
    def problems(self) -> list[str]:
        """One sentence per label that will not be used, naming its files."""
        lines = []
        for label, files in sorted(self.unmatched.items()):
            lines.append(f"label '{label}' matches no ImageNet-1k class ({len(files)} file(s): "
                         f"{', '.join(os.path.basename(f) for f in files[:5])}{', ...' if len(files) > 5 else ''})")
        for label, (classes, files) in sorted(self.ambiguous.items()):
            names = ", ".join(f"{i} {synsets()[i].name}" for i in classes)
            lines.append(f"label '{label}' matches several classes ({names}); use the index or WordNet id "
                         f"({len(files)} file(s): {', '.join(os.path.basename(f) for f in files[:5])})")
        return lines


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


def load_labelled_folder(folder: str | os.PathLike) -> LabelledSet:
    """Read a folder laid out as one sub-folder per class, or holding a ``labels.csv`` (file,label)."""
    root = Path(os.fspath(folder))
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    csv_path = root / "labels.csv"
    pairs: list[tuple[str, str]] = []
    if csv_path.is_file():
        layout = "labels.csv"
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or not {"file", "label"} <= {f.strip() for f in reader.fieldnames}:
                    raise DatasetError(f"{csv_path}: needs the columns 'file' and 'label'")
                for row in reader:
                    row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                    if row.get("file"):
                        pairs.append((str(root / row["file"]), row.get("label", "")))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DatasetError(f"{csv_path}: cannot be read ({exc})") from exc
    else:
        layout = "folders"
        try:
            classes = sorted(p for p in root.iterdir() if p.is_dir())
        except OSError as exc:
            raise DatasetError(f"{root}: cannot be read ({exc.strerror or exc})") from exc
        for class_dir in classes:
            try:
                files = sorted(p for p in class_dir.rglob("*") if is_image_path(p.name) and not p.is_dir())
            except OSError:
                files = []
            pairs.extend((str(path), class_dir.name) for path in files)
    if not pairs:
        raise DatasetError(
            f"{root}: no labelled images found; use one sub-folder per class, or a labels.csv with "
            "columns file,label")
    result = LabelledSet(root=str(root), layout=layout)
    for path, label in pairs:
        classes = match_label(label)
        if len(classes) == 1:
            result.images.append(LabelledImage(path, label, next(iter(classes))))
        elif not classes:
            result.unmatched.setdefault(label, []).append(path)
        else:
            result.ambiguous.setdefault(label, (sorted(classes), []))[1].append(path)
    return result
