"""A target with a planted bug, so the quick mode proves the harness reports a crash.

An input starting with ``PLANT`` raises IndexError, an error no shoal layer may let escape.
The committed corpus holds such an input, so a run finds it on its first pass.
"""

from __future__ import annotations


def one_input(data: bytes) -> None:
    if data.startswith(b"PLANT"):
        raise IndexError("planted: the fuzz harness must report this")
