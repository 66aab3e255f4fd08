"""Reads that never wait for the disk: the event loop's way of reading a partition.

On the real disk (ext4 here): the bytes are evicted from the page cache with
``posix_fadvise(DONTNEED)`` after an fsync (``evict`` checks with ``mincore`` that they left),
so a cached-only read must refuse rather than wait, and a normal read brings them back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shoal.storage import LogConfig, LogManager, ReadWouldWait
from shoal.storage.fs import OsFileSystem
from tests.storage.batches import make_batch, payload_of
from tests.support.page_cache import evict

_EVICTION_TRIES = 10


def _refuses_once_evicted(directory: Path, read_cached_only: Callable[[], object]) -> bool:
    """Whether a cached-only read refuses after ``directory`` is evicted, in a few tries.

    A refused read still starts readahead, and on a fast disk that I/O can finish before the
    kernel looks at the page again, so a single try may find the bytes already back. What
    is asserted is that a refusal happens, not that every try refuses.
    """
    for _ in range(_EVICTION_TRIES):
        evict(directory)
        try:
            read_cached_only()
        except ReadWouldWait:
            return True
    return False


def test_a_cached_only_read_refuses_evicted_bytes_and_a_normal_read_returns_them(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    manager = LogManager.open(str(data), fs=OsFileSystem(), default_config=LogConfig())
    try:
        plog = manager.create("t", 0)
        batches = [make_batch(records=3, payload=4000, seed=i) for i in range(20)]
        for batch in batches:
            plog.append(batch)
        plog.flush()

        warm = plog.read(0, 1 << 20, cached_only=True)
        assert isinstance(warm.data, bytearray)  # read into place, not copied again
        expected = plog.read(0, 1 << 20)
        assert bytes(warm.data) == expected.data

        assert _refuses_once_evicted(data, lambda: plog.read(30, 1 << 20, cached_only=True))
        cold = plog.read(30, 1 << 20)  # may wait for the disk, and fills the cache again
        again = plog.read(30, 1 << 20, cached_only=True)
        assert bytes(again.data) == cold.data
        assert cold.first_offset <= 30 < cold.next_offset
        # Every batch came back whole and in order (only baseOffset differs from what was sent).
        stored = bytes(expected.data)
        position, index = 0, 0
        while position < len(stored):
            size = int.from_bytes(stored[position + 8 : position + 12], "big") + 12
            assert payload_of(stored[position : position + size]) == payload_of(batches[index])
            position, index = position + size, index + 1
        assert index == len(batches)
    finally:
        manager.close()
