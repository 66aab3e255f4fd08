"""A fixed CPU load beside the system under test: busy processes that compete for the cores.

The latency figures of a broker on an idle machine say little about one that shares its cores
with application processes, which is how shoal usually runs. ``busy_processes(n)`` starts ``n``
processes that spin at normal priority for as long as the ``with`` block runs; every system in
a run meets the same load, so the ratios stay fair.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_SPIN = "while True:\n    pass\n"


@contextmanager
def busy_processes(count: int) -> Iterator[list[int]]:
    """``count`` spinning processes (their pids) for the duration of the block."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", _SPIN], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield [p.pid for p in spinners]
    finally:
        for p in spinners:
            p.kill()
        for p in spinners:
            p.wait()
