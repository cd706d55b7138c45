"""One colour per model, the same in every chart file and in the dashboard (Okabe-Ito, colour-blind safe)."""

from __future__ import annotations

from collections.abc import Sequence

# Okabe and Ito's qualitative set without its black (error bars and text are black): distinguishable with
# every common colour-vision deficiency. Yellow comes last: it is the weakest on white.
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")

#: How much white the second figure of a pair is mixed with (top-5 beside top-1, parameters beside peak memory):
#: the pair is told apart by its fill, never by a second colour that could be another model's.
LIGHT_MIX = 0.55


def colour_at(position: int) -> str:
    """The colour of the model at ``position`` in the report's order (the palette repeats after 7)."""
    return PALETTE[position % len(PALETTE)]


def model_colours(names: Sequence[str]) -> dict[str, str]:
    """Each result's colour by its position in the report (``[m.name for m in report.models]``): every
    result keeps its position, even one that did not run, so a colour never moves as a run goes on."""
    return {name: colour_at(position) for position, name in enumerate(names)}


def rgb(colour: str) -> tuple[int, int, int]:
    """"#0072B2" -> (0, 114, 178)."""
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def hex_colour(red: int, green: int, blue: int) -> str:
    return f"#{red:02X}{green:02X}{blue:02X}"


def lighter(colour: str, mix: float = LIGHT_MIX) -> str:
    """``colour`` mixed with ``mix`` of white: the fill of the second figure of a pair."""
    red, green, blue = (round(c + (255 - c) * mix) for c in rgb(colour))
    return hex_colour(red, green, blue)
