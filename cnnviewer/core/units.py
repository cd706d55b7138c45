"""Numbers as people read them."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """``151400`` -> ``147.9 KB``; bytes below 1 KB stay whole."""
    for unit in ("bytes", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
