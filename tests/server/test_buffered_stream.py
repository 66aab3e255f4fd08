"""The listeners' stream protocol on both event loops the broker runs on (asyncio's and
uvloop), over plain TCP and TLS: the bytes a client sends arrive through the listener's shared
receive buffer (``get_buffer``/``buffer_updated``), in order, and the writer answers."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from shoal.server import buffered_stream
from shoal.server.event_loops import loop_factory

MESSAGE_BYTES = 3 * buffered_stream.RECEIVE_BUFFER_BYTES + 12_345
"""More than the shared buffer holds: several reads, each through it."""


def contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


async def echo_through_listener(
    server_tls: ssl.SSLContext | None, client_tls: ssl.SSLContext | None, message: bytes
) -> bytes:
    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received = await reader.readexactly(len(message))
        writer.write(received[::-1])
        await writer.drain()
        writer.close()

    loop = asyncio.get_running_loop()
    factory = buffered_stream.buffered_stream_factory(connected, limit=64 * 1024)
    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls)
        writer.write(message)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        return answer
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_reads_go_through_the_shared_buffer_on_either_loop(
    event_loop: str, tls: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lent: list[int] = []
    original = buffered_stream._BufferedStreamProtocol.get_buffer

    def counting_get_buffer(self: buffered_stream._BufferedStreamProtocol, hint: int) -> memoryview:
        buffer = original(self, hint)
        lent.append(len(buffer))
        return buffer

    monkeypatch.setattr(buffered_stream._BufferedStreamProtocol, "get_buffer", counting_get_buffer)
    server_tls, client_tls = contexts(tmp_path) if tls else (None, None)
    message = bytes(range(256)) * (MESSAGE_BYTES // 256)
    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        answer = runner.run(echo_through_listener(server_tls, client_tls, message))
    assert answer == message[::-1]
    # Every read was lent the listener's buffer: none allocated a bytes object of its own
    # (uvloop hands a Protocol subclass new bytes per read, and never calls get_buffer).
    assert len(lent) >= 4
    assert set(lent) == {buffered_stream.RECEIVE_BUFFER_BYTES}
