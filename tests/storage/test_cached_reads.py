"""Reads that never wait for the disk: the event loop's way of reading a partition.

On the real disk (ext4 here): the bytes are evicted from the page cache with
``posix_fadvise(DONTNEED)`` after an fsync, so a cached-only read must refuse rather than wait,
and a normal read brings them back.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoal.storage import LogConfig, LogManager, ReadWouldWait
from shoal.storage.fs import OsFileSystem
from tests.storage.batches import make_batch, payload_of
from tests.support.page_cache import evict


def _probe_eviction_works(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_bytes(os.urandom(1 << 16))
    evict(tmp_path)
    fd = os.open(probe, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(1 << 16)], 0, os.RWF_NOWAIT)
    except BlockingIOError:
        return
    finally:
        os.close(fd)
    pytest.fail(f"{tmp_path}: posix_fadvise(DONTNEED) did not evict; this test needs a real disk")


def test_a_cached_only_read_refuses_evicted_bytes_and_a_normal_read_returns_them(
    tmp_path: Path,
) -> None:
    _probe_eviction_works(tmp_path)
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

        evict(data)
        with pytest.raises(ReadWouldWait):
            plog.read(30, 1 << 20, cached_only=True)
        cold = plog.read(30, 1 << 20)  # may wait for the disk, and fills the cache again
        again = plog.read(30, 1 << 20, cached_only=True)
        assert bytes(again.data) == cold.data
        assert cold.first_offset <= 30 < cold.next_offset
        # Every batch came back whole and in order (only baseOffset differs from what was sent).
        stored = expected.data
        position, index = 0, 0
        while position < len(stored):
            size = int.from_bytes(stored[position + 8 : position + 12], "big") + 12
            assert payload_of(stored[position : position + size]) == payload_of(batches[index])
            position, index = position + size, index + 1
        assert index == len(batches)
    finally:
        manager.close()
