"""The leader-epoch history of one partition (Kafka's LeaderEpochFileCache).

Each entry says "leader epoch E began at offset S". A partition starts at epoch 0 at its first
offset; every broker start elects its leader again, opening a new epoch at the log end. Clients
use the history (OffsetForLeaderEpoch, KIP-320) to find where their log and the broker's
diverged: after a crash erased records a consumer had read, the consumer's last epoch ends at
the offset where the erased records were, and it goes back there instead of skipping the
records written at those offsets since.

The file keeps Kafka's ``leader-epoch-checkpoint`` text layout::

    0               format version
    2               number of entries
    0 0             "epoch start_offset", oldest first
    1 57

A broker-wide floor (:data:`EPOCH_FLOOR_FILE`) keeps the highest epoch ever begun, saved
before the partitions' files, so a partition that lost its file still begins above it.

It is replaced atomically (fsynced) at each start before the partition serves, so no batch is
ever stamped with an epoch above the file's. A partition created at runtime writes none until
its next start: with no readable file, a last batch stamped 0 gives epoch 0 from the log start,
reading only the last headers; a higher stamp means the file was lost, and the history is
rebuilt from the epochs stamped in every batch. A last batch stamped -1 is from a log written
before epochs (all its batches are): as Kafka's, whose history holds only the epochs stamped in
batches, the history then begins at the log end, and no epoch covers the old records.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from itertools import pairwise
from typing import Final

from shoal.storage.fs import FileSystem, write_atomically

EPOCH_FILE: Final = "leader-epoch-checkpoint"
EPOCH_FLOOR_FILE: Final = ".leader-epoch-floor"
"""At the data directory's root: the highest leader epoch any partition ever began. A
partition's own file can be lost (a backup restored without it, damage) after a crash erased
the records of its last epoch, leaving nothing in the partition that remembers the number;
the floor does, so an epoch number is never used twice."""
EPOCH_FLOOR_BYTES_MAX: Final = 64
"""One decimal number and a newline: a larger file is damaged."""
FORMAT_VERSION: Final = 0
"""Kafka's version of the file's layout, kept so that Kafka's tools can read it too."""
UNDEFINED_EPOCH: Final = -1
UNDEFINED_OFFSET: Final = -1
EPOCH_FILE_BYTES_MAX: Final = 16 * 1024 * 1024
"""Far above any real history (one short line per broker start): a larger file is damaged."""


class LeaderEpochCache:
    """Epoch entries ``(epoch, start_offset)``, both strictly increasing."""

    __slots__ = ("_epochs", "_starts")

    def __init__(self, entries: Iterable[tuple[int, int]] = ()) -> None:
        self._epochs: list[int] = []
        self._starts: list[int] = []
        for epoch, start in entries:
            self.assign(epoch, start)

    def entries(self) -> list[tuple[int, int]]:
        return list(zip(self._epochs, self._starts, strict=True))

    @property
    def latest_epoch(self) -> int:
        """The current epoch, or -1 when the history is empty."""
        return self._epochs[-1] if self._epochs else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` begins at ``start_offset``; returns whether anything changed.

        As Kafka does, entries that would break monotonicity (an epoch at or above the new
        one, or one starting at or after it) are dropped first: they belong to a history
        that the new entry replaces.
        """
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"epoch {epoch} at offset {start_offset} is not a valid entry")
        if self._epochs and self._epochs[-1] == epoch and start_offset >= self._starts[-1]:
            return False
        while self._epochs and (self._epochs[-1] >= epoch or self._starts[-1] >= start_offset):
            self._epochs.pop()
            self._starts.pop()
        self._epochs.append(epoch)
        self._starts.append(start_offset)
        return True

    def truncate_from_end(self, end_offset: int) -> bool:
        """Drop the epochs that begin at or after ``end_offset`` (the log was cut there)."""
        keep = bisect_left(self._starts, end_offset)
        if keep == len(self._starts):
            return False
        del self._epochs[keep:], self._starts[keep:]
        return True

    def truncate_from_start(self, start_offset: int) -> bool:
        """Forget epochs wholly below a new log start; the one holding it now begins there."""
        holder = bisect_right(self._starts, start_offset) - 1
        if holder < 0 or (holder == 0 and self._starts[0] == start_offset):
            return False
        del self._epochs[:holder], self._starts[:holder]
        self._starts[0] = start_offset
        return True

    def epoch_for(self, offset: int) -> int:
        """The epoch whose range holds ``offset``, or -1 if it lies before every entry."""
        index = bisect_right(self._starts, offset) - 1
        return self._epochs[index] if index >= 0 else UNDEFINED_EPOCH

    def end_offset_for(self, requested: int, log_end_offset: int) -> tuple[int, int]:
        """``(epoch, end offset)`` of ``requested`` (Kafka's ``endOffsetFor``).

        The current epoch ends at the log end; an older one at the start of the next known
        epoch, answered with the largest known epoch at or below it (the client's epoch may
        never have been seen here). An epoch older than all returns itself and the first
        entry's start; -1 and epochs newer than all are undefined: ``(-1, -1)``.
        """
        if requested == UNDEFINED_EPOCH or not self._epochs:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if requested == self._epochs[-1]:
            return requested, log_end_offset
        higher = bisect_right(self._epochs, requested)
        if higher == len(self._epochs):
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if higher == 0:
            return requested, self._starts[0]
        return self._epochs[higher - 1], self._starts[higher]

    # -- the file -------------------------------------------------------------------------

    def encode(self) -> bytes:
        lines = [str(FORMAT_VERSION), str(len(self._epochs))]
        lines += [f"{e} {s}" for e, s in zip(self._epochs, self._starts, strict=True)]
        return ("\n".join(lines) + "\n").encode("ascii")

    @classmethod
    def decode(cls, data: bytes) -> LeaderEpochCache | None:
        """The history in ``data``, or None when it is not a whole, well-formed version-0 file
        (a torn or foreign file is rebuilt, never half-trusted)."""
        try:
            lines = data.decode("ascii").split("\n")
            if lines[-1] != "" or int(lines[0]) != FORMAT_VERSION:
                return None
            count = int(lines[1])
            body = lines[2:-1]
            if count != len(body):
                return None
            entries = []
            for line in body:
                epoch, start = line.split(" ")
                entries.append((int(epoch), int(start)))
        except (UnicodeDecodeError, ValueError, IndexError):
            return None
        epochs, starts = [e for e, _ in entries], [s for _, s in entries]
        ordered = all(a < b for a, b in pairwise(epochs)) and all(
            a < b for a, b in pairwise(starts)
        )
        if not ordered or any(e < 0 or s < 0 for e, s in entries):
            return None
        return cls(entries)


def read_epoch_file(fs: FileSystem, directory: str) -> LeaderEpochCache | None:
    """The saved history, or None when there is none or it is damaged."""
    path = os.path.join(directory, EPOCH_FILE)
    if not fs.exists(path):
        return None
    f = fs.open(path)
    try:
        size = f.size()
        return None if size > EPOCH_FILE_BYTES_MAX else LeaderEpochCache.decode(f.pread(size, 0))
    finally:
        f.close()


def write_epoch_file(fs: FileSystem, directory: str, cache: LeaderEpochCache) -> None:
    """Replace the file with ``cache``, durably (write, fsync, rename, fsync the directory)."""
    write_atomically(fs, os.path.join(directory, EPOCH_FILE), cache.encode())


def read_epoch_floor(fs: FileSystem, data_dir: str) -> int:
    """The highest epoch ever begun in ``data_dir``, or -1 when none was saved (a new data
    directory, or one from before the floor) or the file is damaged (the partitions' own
    files and batches still give each its highest)."""
    path = os.path.join(data_dir, EPOCH_FLOOR_FILE)
    if not fs.exists(path):
        return UNDEFINED_EPOCH
    f = fs.open(path)
    try:
        size = f.size()
        data = b"" if size > EPOCH_FLOOR_BYTES_MAX else bytes(f.pread(size, 0))
    finally:
        f.close()
    text = data.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else UNDEFINED_EPOCH


def write_epoch_floor(fs: FileSystem, data_dir: str, epoch: int) -> None:
    """Replace the floor with ``epoch``, durably."""
    write_atomically(fs, os.path.join(data_dir, EPOCH_FLOOR_FILE), f"{epoch}\n".encode())
