"""Name → entry tables (optimizers, data sets, test surfaces) share one lookup, so an unknown name gets the
same error everywhere: what was asked for and every valid name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup(table: Mapping[str, T], name: object, kind: str) -> T:
    """``table[name]``, or a ``ValueError`` naming the unknown ``kind`` and listing the valid names."""
    try:
        return table[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {kind} {name!r}; choose one of: {', '.join(table)}") from None
