"""Invariant checks that survive ``python -O``.

``assert`` statements vanish under ``-O``; the checks that guard offsets and file positions must
not, because a broken invariant there means silently corrupt data. A failed invariant is a
programmer error: it raises and is never caught to carry on.
"""

from __future__ import annotations


class InvariantError(AssertionError):
    """An internal invariant was broken: a bug in shoal, not bad input."""


def invariant(condition: bool, message: str = "invariant violated") -> None:
    """Raise :class:`InvariantError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise InvariantError(message)
