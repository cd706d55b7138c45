"""ImageNet-1k class names in torchvision's order, and every WordNet lemma of each class."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cnnviewer.core.paths import resources_dir

NUM_CLASSES = 1000


@dataclass(frozen=True)
class Synset:
    """One ImageNet-1k class: its index, torchvision's name, WordNet id and every lemma."""

    index: int
    name: str
    wnid: str
    lemmas: tuple[str, ...]


@lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 class names exactly as torchvision's weights carry them (kept with the catalog's snapshot:
    the shipped synsets' first lemmas differ from them in two classes)."""
    from cnnviewer.core.catalog import torchvision_categories

    categories = torchvision_categories()
    assert len(categories) == NUM_CLASSES
    return categories


@lru_cache(maxsize=1)
def synsets() -> tuple[Synset, ...]:
    """Every class with its WordNet id and lemmas, from the shipped ``imagenet_synsets.txt``."""
    names = imagenet_categories()
    rows = []
    lines = (resources_dir() / "imagenet_synsets.txt").read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(line for line in lines if line.strip()):
        wnid, _, rest = line.partition(" ")
        lemmas = tuple(part.strip() for part in rest.split(",") if part.strip())
        rows.append(Synset(index=index, name=names[index], wnid=wnid, lemmas=lemmas))
    if len(rows) != NUM_CLASSES:
        raise ValueError(f"imagenet_synsets.txt has {len(rows)} classes, expected {NUM_CLASSES}")
    return tuple(rows)


class UnknownClass(ValueError):
    """A class asked for by a name or number that is not one ImageNet-1k class; ``str()`` says why."""


def class_of(text: str) -> int:
    """The class index that ``text`` names: an index 0-999, a class name or any WordNet lemma of it
    (any case), or a part of a name that only one class has."""
    wanted = " ".join(text.split()).casefold()
    if not wanted:
        raise UnknownClass("no class given: give an index 0-999 or a class name")
    if wanted.isdigit():
        if int(wanted) < NUM_CLASSES:
            return int(wanted)
        raise UnknownClass(f"{text!r} is not an ImageNet-1k class index (0-999)")
    exact = sorted({s.index for s in synsets()
                    if wanted in {s.name.casefold(), *(lemma.casefold() for lemma in s.lemmas)}})
    if len(exact) == 1:
        return exact[0]
    found = exact or sorted({s.index for s in synsets() if wanted in s.name.casefold()
                             or any(wanted in lemma.casefold() for lemma in s.lemmas)})
    if len(found) == 1:
        return found[0]
    if not found:
        raise UnknownClass(f"no ImageNet-1k class is called {text!r}")
    shown = ", ".join(f"{i} {imagenet_categories()[i]}" for i in found[:8])
    more = f" and {len(found) - 8} more" if len(found) > 8 else ""
    raise UnknownClass(f"{text!r} names {len(found)} classes ({shown}{more}); give the index or a longer name")
