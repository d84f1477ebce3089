"""Dotted state paths. The root is ``""``; ``a.b`` is child ``b`` of top-level state ``a``."""

from __future__ import annotations

from app.core.model import ROOT


def parent_of(path: str) -> str:
    """The parent path (``""`` for a top-level state)."""
    head, _, _ = path.rpartition(".")
    return head


def join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def is_descendant(path: str, ancestor: str) -> bool:
    """True when ``path`` lies strictly inside ``ancestor``."""
    if ancestor == ROOT:
        return path != ROOT
    return path.startswith(ancestor + ".")


def ancestors_of(path: str) -> tuple[str, ...]:
    """Proper ancestors, nearest first, ending with the root."""
    found: list[str] = []
    while path:
        path = parent_of(path)
        found.append(path)
    return tuple(found)
