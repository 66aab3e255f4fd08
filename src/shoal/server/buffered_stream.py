"""A stream protocol that receives into one reused buffer instead of a new ``bytes`` per read.

asyncio's TLS layer reads decrypted bytes for a plain ``Protocol`` with
``SSLObject.read(256 KiB)``, once per TLS record: each call allocates a 256 KiB object and
shrinks it to the record (librdkafka sends a record per message slice, about 1 KiB), which made
that allocation the largest single cost of a TLS connection's produce path (a profile of
1 KiB produce over SASL_SSL: about 780,000 reads for 1.4 million records). Given a
``BufferedProtocol``, asyncio (and uvloop) decrypts straight into the buffer the protocol lends
it instead, and the plaintext socket transport likewise uses ``recv_into``.

The bytes are then handed to the connection's ``StreamReader`` as before (one copy, the same
as ``data_received`` made), so everything above the transport is unchanged. The lent buffer
is shared by every connection of a listener: asyncio asks for it, fills it and reports the
count in one synchronous step of the event loop, and the bytes are copied out before that step
ends, so no two connections ever hold it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

RECEIVE_BUFFER_BYTES: Final = 256 * 1024
"""The shared receive buffer of a listener: a read takes at most this much at a time."""

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _BufferedStreamProtocol(asyncio.BufferedProtocol):
    """A ``StreamReaderProtocol`` fed through ``get_buffer``/``buffer_updated``.

    It wraps the ``StreamReaderProtocol`` rather than subclassing it: that class is an
    ``asyncio.Protocol``, and uvloop (for TCP and for TLS alike) takes any ``Protocol`` for a
    plain one, whatever else it implements, and hands it a new ``bytes`` per read (over TLS,
    one 256 KiB allocation per TLS record). asyncio's loop only asks for ``BufferedProtocol``.
    The stream's writer is built on the wrapped protocol, so draining and closing are its.
    """

    def __init__(
        self, reader: asyncio.StreamReader, connected: ClientConnected, shared: memoryview
    ) -> None:
        self._stream = asyncio.StreamReaderProtocol(reader, connected)
        self._shared = shared

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._stream.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stream.connection_lost(exc)

    def pause_writing(self) -> None:
        self._stream.pause_writing()

    def resume_writing(self) -> None:
        self._stream.resume_writing()

    def eof_received(self) -> bool:
        return bool(self._stream.eof_received())

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._shared

    def buffer_updated(self, nbytes: int) -> None:
        # Typed as bytes, but the reader only extends a bytearray with it, which takes any
        # buffer: a bytes() here would be a second copy.
        self._stream.data_received(self._shared[:nbytes])  # type: ignore[arg-type]


def buffered_stream_factory(
    connected: ClientConnected, *, limit: int
) -> Callable[[], asyncio.BaseProtocol]:
    """A protocol factory for ``loop.create_server`` that calls ``connected(reader, writer)``
    per connection, as ``asyncio.start_server`` does, with a reader bounded by ``limit``."""
    shared = memoryview(bytearray(RECEIVE_BUFFER_BYTES))

    def make() -> asyncio.BaseProtocol:
        return _BufferedStreamProtocol(asyncio.StreamReader(limit=limit), connected, shared)

    return make
