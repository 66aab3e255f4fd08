"""A stream protocol that receives into one reused buffer instead of a new ``bytes`` per read.

asyncio's TLS layer reads decrypted bytes for a plain ``Protocol`` with
``SSLObject.read(256 KiB)``, once per TLS record: each call allocates a 256 KiB object and
shrinks it to the record (librdkafka sends a record per message slice, about 1 KiB), which made
that allocation the largest single cost of a TLS connection's produce path (a profile of
1 KiB produce over SASL_SSL: about 780,000 reads for 1.4 million records). Given a
``BufferedProtocol``, asyncio decrypts straight into the buffer the protocol lends it instead,
and the plaintext socket transport likewise uses ``recv_into``.

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


class _BufferedStreamProtocol(asyncio.StreamReaderProtocol, asyncio.BufferedProtocol):
    """``StreamReaderProtocol`` fed through ``get_buffer``/``buffer_updated``."""

    def __init__(
        self, reader: asyncio.StreamReader, connected: ClientConnected, shared: memoryview
    ) -> None:
        super().__init__(reader, connected)
        self._shared = shared

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._shared

    def buffer_updated(self, nbytes: int) -> None:
        # Typed as bytes, but the reader only extends a bytearray with it, which takes any
        # buffer: a bytes() here would be a second copy.
        self.data_received(self._shared[:nbytes])  # type: ignore[arg-type]


def buffered_stream_factory(
    connected: ClientConnected, *, limit: int
) -> Callable[[], asyncio.BaseProtocol]:
    """A protocol factory for ``loop.create_server`` that calls ``connected(reader, writer)``
    per connection, as ``asyncio.start_server`` does, with a reader bounded by ``limit``."""
    shared = memoryview(bytearray(RECEIVE_BUFFER_BYTES))

    def make() -> asyncio.BaseProtocol:
        return _BufferedStreamProtocol(asyncio.StreamReader(limit=limit), connected, shared)

    return make
