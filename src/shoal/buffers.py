"""The buffer type accepted wherever bytes are read without copying.

``collections.abc.Buffer`` arrived in Python 3.12; shoal supports 3.11, so the concrete union.
"""

from __future__ import annotations

from typing import TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview


def skip_bytes(views: list[memoryview], count: int) -> list[memoryview]:
    """``views`` without their first ``count`` bytes (what a short vectored write left)."""
    out: list[memoryview] = []
    for view in views:
        if count >= view.nbytes:
            count -= view.nbytes
            continue
        out.append(view[count:])
        count = 0
    return out
