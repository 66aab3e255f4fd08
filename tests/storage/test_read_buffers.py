"""The pool of Fetch read buffers: a buffer is handed out again only once nothing but the pool
refers to it (a view of it, as a transport holds one until it has sent it, keeps it out)."""

from __future__ import annotations

import sys

import pytest

from shoal.storage import read_buffers
from shoal.storage.read_buffers import ReadBuffers

SIZE = 256 * 1024


def test_a_buffer_is_reused_once_released_and_never_while_a_view_of_it_is_held() -> None:
    pool = ReadBuffers(buffers_max=2)
    first = pool.take(SIZE)
    first[:5] = b"first"
    held = memoryview(first)[100:200]  # a transport's slice of what it has not sent yet
    first_id = id(first)
    del first
    second = pool.take(SIZE)
    assert id(second) != first_id
    assert bytes(held.obj[:5]) == b"first"  # type: ignore[index]
    del second
    third = pool.take(SIZE)  # the second buffer is free again: reused
    assert id(third) != first_id
    held.release()
    del held, third
    reused = [id(pool.take(SIZE)) for _ in range(2)]
    assert first_id in reused
    assert pool.pooled == 2


def test_a_reused_buffer_has_the_size_asked_for() -> None:
    pool = ReadBuffers(buffers_max=1)
    pool.take(SIZE)
    assert len(pool.take(SIZE // 2)) == SIZE // 2
    assert len(pool.take(SIZE * 2)) == SIZE * 2
    assert len(pool.take(SIZE + 1)) == SIZE + 1


def test_every_buffer_in_use_means_a_new_one_not_a_shared_one() -> None:
    pool = ReadBuffers(buffers_max=2)
    taken = [pool.take(SIZE) for _ in range(5)]
    assert len({id(b) for b in taken}) == 5
    assert pool.pooled == 2


def test_small_and_huge_reads_are_not_pooled() -> None:
    pool = ReadBuffers(buffers_max=4, bytes_min=1024, bytes_max=SIZE)
    pool.take(100)
    pool.take(SIZE + 1)
    assert pool.pooled == 0


def _shifted_counts(monkeypatch: pytest.MonkeyPatch, shift: int) -> None:
    """Reference counts as an interpreter that counts ``shift`` fewer references reports them
    (CPython 3.14 stopped counting some locals' references, gh-130704)."""
    real = sys.getrefcount
    monkeypatch.setattr(read_buffers.sys, "getrefcount", lambda o: real(o) - shift)


@pytest.mark.parametrize("shift", [1, 2])
def test_a_held_buffer_is_never_reused_whatever_the_interpreter_counts(
    monkeypatch: pytest.MonkeyPatch, shift: int
) -> None:
    """Found in review: the pool compared with a fixed count (3), which on 3.14 would call a
    buffer one transport still holds free and hand it out again (corrupted Fetch answers)."""
    _shifted_counts(monkeypatch, shift)
    pool = ReadBuffers(buffers_max=2, only_pool_count=read_buffers._pool_only_count())
    first = pool.take(SIZE)
    held = memoryview(first)  # one holder besides the pool
    first_id = id(first)
    del first
    assert first_id not in {id(pool.take(SIZE)) for _ in range(3)}
    held.release()
    del held
    assert id(pool.take(SIZE)) == first_id  # free again: reused


def test_no_pool_where_counts_cannot_tell_free_from_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_buffers.sys, "getrefcount", lambda _o: 1)
    assert read_buffers._pool_only_count() is None
    pool = ReadBuffers(buffers_max=2, only_pool_count=None)
    assert pool.take(SIZE) is not pool.take(SIZE)
    assert pool.pooled == 0


def test_a_buffer_is_reused_only_for_sizes_it_holds_without_reallocating() -> None:
    """Found in review: a free buffer was resized to any size (a shrink below half frees its
    memory, a growth allocates and copies), 27 times slower than allocating for mixed sizes."""
    pool = ReadBuffers(buffers_max=1)
    first = pool.take(SIZE)
    first_id = id(first)
    del first
    assert id(pool.take(SIZE * 2)) != first_id  # larger than its capacity: a new buffer
    assert id(pool.take(SIZE // 4)) != first_id  # under half: a new buffer
    reused = pool.take(SIZE // 2 + 1)
    assert id(reused) == first_id and len(reused) == SIZE // 2 + 1
