"""Writing a response's buffers to a socket in one system call, without joining them.

A Fetch response is a few small framing buffers around each partition's record bytes. Handing
them to the transport one by one costs a ``send`` per buffer (each one runs the loopback TCP
stack and may wake the client for a partial frame); joining them copies the records. When the
transport holds nothing unsent, ``writev`` sends them all at once from where they lie; what the
socket does not take goes to the transport as usual, which keeps the order.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Final

from shoal.buffers import Buffer, skip_bytes

IOV_MAX: Final = 1024
"""Linux's limit on buffers per ``writev``; a frame with more is written in several calls."""


class GatherWriter:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._transport = writer.transport
        sock = writer.get_extra_info("socket")
        # Straight to the descriptor only for plain TCP: under TLS the transport encrypts.
        plain = writer.get_extra_info("sslcontext") is None
        self._fd: int = sock.fileno() if sock is not None and plain else -1

    def write(self, buffers: Sequence[Buffer]) -> None:
        """Send ``buffers`` in order: as much as the socket takes now in one ``writev``, the
        rest buffered by the transport (and copied there, as any transport write is)."""
        views = [memoryview(b).cast("B") for b in buffers]
        if self._fd >= 0 and not self._transport.is_closing():
            while views and self._transport.get_write_buffer_size() == 0:
                batch = views[:IOV_MAX]
                try:
                    sent = os.writev(self._fd, batch)
                except (BlockingIOError, InterruptedError):
                    break
                views = skip_bytes(views, sent)
                if sent < sum(v.nbytes for v in batch):
                    break  # the socket is full: the transport waits for it
        for view in views:
            self._transport.write(view)
