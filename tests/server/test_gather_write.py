"""A response's buffers reach the socket in order, in one writev when the socket takes them,
and through the transport's buffer (still in order) when it does not."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from pathlib import Path

import pytest

from shoal.server import gather_write
from shoal.server.gather_write import GatherWriter, join_small
from tests.server.tls_support import Pki


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


def test_small_neighbours_are_joined_up_to_a_tls_record_and_large_buffers_pass_uncopied() -> None:
    big = memoryview(bytearray(os.urandom(40_000)))
    views = [memoryview(b) for b in (b"size", b"", b"header", big, b"a" * 9, b"b" * 9, b"c" * 9)]
    joined = join_small(views, 20)
    assert [bytes(v) for v in joined] == [b"sizeheader", bytes(big), b"a" * 9 + b"b" * 9, b"c" * 9]
    assert joined[1] is views[3]  # the record bytes are not copied


def test_a_tls_frame_leaves_in_one_write_of_few_records_and_arrives_whole(tmp_path: Path) -> None:
    """Through asyncio's real TLS transport: the frame's bytes arrive in order, and the small
    framing buffers did not each become a TLS record of their own (the record count is read
    off the ciphertext the server sent)."""
    pki = Pki(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.keystore)
    server_context.num_tickets = 0  # no session tickets among the records counted
    client_context = ssl.create_default_context(cafile=str(pki.ca_file))
    frame = [b"\x00\x00\x10\x00", b"header", os.urandom(100_000), b"partition", b"end"]

    async def scenario() -> tuple[bytes, int]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            GatherWriter(writer).write(frame)
            await writer.drain()
            await done
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(_read_tls, port, client_context, sum(map(len, frame)))
        finally:
            done.set_result(None)
            server.close()

    received, records = asyncio.run(scenario())
    assert received == b"".join(frame)
    # 100,000 bytes need 7 records of 16 KiB; the joined framing one before and one after
    # (one record per buffer made 11).
    assert records == 9


def _read_tls(port: int, context: ssl.SSLContext, size: int) -> tuple[bytes, int]:
    """``size`` plaintext bytes over TLS, and how many TLS application records carried them."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    records = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        sock.sendall(outgoing.read())
        plaintext = bytearray()
        pending = bytearray()
        while len(plaintext) < size:
            chunk = sock.recv(65536)
            assert chunk, "the server closed early"
            pending += chunk
            # Each TLS record: type (1), version (2), length (2), then that many bytes.
            while len(pending) >= 5 and len(pending) >= 5 + int.from_bytes(pending[3:5], "big"):
                length = 5 + int.from_bytes(pending[3:5], "big")
                incoming.write(bytes(pending[:length]))
                del pending[:length]
                records += 1
                with contextlib.suppress(ssl.SSLWantReadError):
                    while piece := tls.read(1 << 20):
                        plaintext += piece
    return bytes(plaintext), records
