"""A hold that keeps the GIL: to show that a step of background work cannot stall the broker.

A thread of the broker's process that sits in a long C call without releasing the GIL (a
clean decoding records, a big checksum, a garbage collection) stops every other thread of
that process, the event loop included, until it returns. :class:`GilHold` is such a call,
on demand: used as a step hook (it is picklable, so it also works in another process), it
blocks at its first call in ``read(2)`` made through ``ctypes.PyDLL``, which keeps the GIL,
until :meth:`release` or the watchdog of :meth:`release_later` writes to its FIFO.

The files it keeps in its directory tell a test what happened, from any process: ``started``
once the hold began, ``released`` once the watchdog decided to release it (written *before*
the FIFO, so whatever ran in the held process after that file appeared ran after the release),
and ``steps``, one byte per call after the hold returned.

As a cleaner's step hook it can wait for a point of the clean: with ``after_cleaned_in`` (a
partition's folder) it holds at the first step at which that folder has a ``.cleaned`` segment
with bytes in it, based at ``base_at_least`` or later (0: the first group being written; past
the first group's base: the first group was swapped in, the clean is in a later one).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path


class GilHold:
    def __init__(
        self,
        directory: Path,
        *,
        after_cleaned_in: str | None = None,
        base_at_least: int = 0,
    ) -> None:
        self.fifo = str(directory / "release.fifo")
        self.started = str(directory / "started")
        self.released = str(directory / "released")
        self.steps = str(directory / "steps")
        self.after_cleaned_in = after_cleaned_in
        self.base_at_least = base_at_least
        os.mkfifo(self.fifo)

    def __call__(self, *_args: object) -> None:
        """Hold at the first call (in whichever process makes it) that finds the awaited point;
        return at once after."""
        if os.path.exists(self.started):
            with open(self.steps, "ab") as f:
                f.write(b".")
            return
        if not self._at_the_point():
            return
        fd = os.open(self.fifo, os.O_RDWR)  # read-write: opening does not wait for a writer
        try:
            Path(self.started).touch()
            buffer = ctypes.create_string_buffer(1)
            ctypes.PyDLL(None).read(fd, buffer, 1)  # PyDLL: the GIL stays held while it blocks
        finally:
            os.close(fd)

    def _at_the_point(self) -> bool:
        folder = self.after_cleaned_in
        if folder is None:
            return True
        return any(
            name.endswith(".log.cleaned")
            and int(name.split(".")[0]) >= self.base_at_least
            and _size(os.path.join(folder, name)) > 0
            for name in os.listdir(folder)
        )

    def steps_after_hold(self) -> int:
        """Calls made after the hold returned (0 before)."""
        return os.path.getsize(self.steps) if os.path.exists(self.steps) else 0

    def has_started(self) -> bool:
        return os.path.exists(self.started)

    def was_released(self) -> bool:
        return os.path.exists(self.released)

    def release(self) -> None:
        Path(self.released).touch()
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)

    def release_later(self, seconds: float) -> subprocess.Popen[bytes]:
        """A watchdog process that releases the hold after ``seconds``, so that a test of a
        process the hold froze whole ends (and fails) rather than hangs. Kill it at the end."""
        script = f'sleep {seconds}; : > "$1"; printf x > "$2"'
        return subprocess.Popen(
            ["/bin/sh", "-c", script, "watchdog", self.released, self.fifo],
            start_new_session=True,
        )


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0  # swapped in (renamed) meanwhile
