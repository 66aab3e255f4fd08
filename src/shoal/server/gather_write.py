"""Writing a response's buffers to a socket in one system call, without joining them.

A Fetch response is a few small framing buffers around each partition's record bytes. Handing
them to the transport one by one costs a ``send`` per buffer (each one runs the loopback TCP
stack and may wake the client for a partial frame); joining them copies the records. When the
transport holds nothing unsent, ``writev`` sends them all at once from where they lie; what the
socket does not take goes to the transport as usual, which keeps the order.

Under TLS the transport encrypts, so there is no descriptor to ``writev`` to. There, each
``write`` is encrypted on its own into TLS records, read out of OpenSSL and sent: a frame of
six buffers made six ``send`` calls and at least six TLS records, the framing ones a few bytes
each, which the client decrypts one ``SSL_read`` at a time. Instead the small buffers next to
each other are joined (a copy of a few bytes), and the frame goes to the TLS transport in one
``writelines``: one pass of encryption, one read out of OpenSSL, one ``send``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Final

from shoal.buffers import Buffer, skip_bytes

IOV_MAX: Final = 1024
"""Linux's limit on buffers per ``writev``; a frame with more is written in several calls."""
TLS_RECORD_PLAINTEXT_BYTES: Final = 16 * 1024
"""The most plaintext one TLS record carries (RFC 8446 section 5.1: 2^14 bytes). Buffers
smaller than this are joined with their small neighbours, up to this much, before encryption:
copying them costs less than a TLS record of their own."""


class GatherWriter:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._transport = writer.transport
        sock = writer.get_extra_info("socket")
        # Straight to the descriptor only for plain TCP: under TLS the transport encrypts.
        self._tls = writer.get_extra_info("sslcontext") is not None
        self._fd: int = sock.fileno() if sock is not None and not self._tls else -1

    def write(self, buffers: Sequence[Buffer]) -> None:
        """Send ``buffers`` in order: as much as the socket takes now in one ``writev``, the
        rest buffered by the transport (and copied there, as any transport write is)."""
        views = [memoryview(b).cast("B") for b in buffers]
        if self._tls:
            # asyncio's (and uvloop's) TLS transport encrypts a whole list in one go; a plain
            # transport's writelines would join it, which is why only TLS takes this path.
            self._transport.writelines(join_small(views, TLS_RECORD_PLAINTEXT_BYTES))
            return
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


def join_small(views: Sequence[memoryview], limit: int) -> list[memoryview]:
    """``views`` in order, each run of neighbours smaller than ``limit`` joined into one buffer
    of at most ``limit`` bytes; larger buffers pass uncopied, empty ones are dropped."""
    out: list[memoryview] = []
    run: list[memoryview] = []
    run_bytes = 0

    def flush() -> None:
        nonlocal run_bytes
        if len(run) == 1:
            out.append(run[0])
        elif run:
            out.append(memoryview(b"".join(run)))
        run.clear()
        run_bytes = 0

    for view in views:
        size = view.nbytes
        if size == 0:
            continue
        if size >= limit:
            flush()
            out.append(view)
            continue
        if run_bytes + size > limit:
            flush()
        run.append(view)
        run_bytes += size
    flush()
    return out
