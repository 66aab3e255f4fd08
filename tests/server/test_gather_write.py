"""A response's buffers reach the socket in order, in one writev when the socket takes them,
and through the transport's buffer (still in order) when it does not."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from shoal.server import gather_write
from shoal.server.gather_write import GatherWriter


async def _pair() -> tuple[asyncio.StreamWriter, socket.socket]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(True)
    _reader, writer = await asyncio.open_connection(sock=ours)
    return writer, theirs


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        assert chunk, "the peer closed early"
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def test_a_small_frame_goes_out_in_one_writev_without_the_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real_writev = os.writev

    def counting_writev(fd: int, buffers: list[memoryview]) -> int:
        calls.append(len(buffers))
        return real_writev(fd, buffers)

    monkeypatch.setattr(gather_write.os, "writev", counting_writev)

    async def scenario() -> bytes:
        writer, theirs = await _pair()
        records = bytearray(os.urandom(50_000))
        GatherWriter(writer).write([b"head", records, memoryview(b"tail")])
        assert writer.transport.get_write_buffer_size() == 0  # nothing copied into it
        received = await asyncio.to_thread(_read_exactly, theirs, 50_008)
        writer.close()
        theirs.close()
        assert received == b"head" + records + b"tail"
        return received

    asyncio.run(scenario())
    assert calls == [3]


def test_what_the_socket_refuses_is_queued_in_order_behind_what_it_took() -> None:
    async def scenario() -> None:
        writer, theirs = await _pair()
        parts = [os.urandom(3_000_000), os.urandom(10), os.urandom(2_000_000)]
        gather = GatherWriter(writer)
        gather.write(parts[:2])  # larger than a socket buffer: the rest waits in the transport
        assert writer.transport.get_write_buffer_size() > 0
        gather.write(parts[2:])  # must queue behind, not jump ahead through writev
        expected = b"".join(parts)
        received = asyncio.create_task(asyncio.to_thread(_read_exactly, theirs, len(expected)))
        await writer.drain()
        assert await received == expected
        writer.close()
        theirs.close()

    asyncio.run(scenario())
