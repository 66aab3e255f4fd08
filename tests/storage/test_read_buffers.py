"""The pool of Fetch read buffers: a buffer is handed out again only once nothing but the pool
refers to it (a view of it, as a transport holds one until it has sent it, keeps it out)."""

from __future__ import annotations

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
