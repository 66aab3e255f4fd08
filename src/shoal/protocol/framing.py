"""Size-prefixed frames, the unit of every Kafka request and response on a connection.

Layout::

    0  size   int32, big-endian: number of bytes that follow (the frame body)
    4  body   size bytes: header + message

:class:`FrameDecoder` turns a byte stream, fed in chunks of any size, into frame bodies.
:func:`encode_frame` goes the other way for a body made of several parts, so the server can send
record bytes taken from a log segment after a header it encoded, without joining them first.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Final

from shoal.buffers import Buffer
from shoal.protocol.errors import EncodeError, FrameError

SIZE_PREFIX_BYTES: Final = 4

FRAME_BYTES_LIMIT: Final = 2**31 - 1
"""The largest body the int32 size prefix can describe."""

DEFAULT_MAX_FRAME_BYTES: Final = 100 * 1024 * 1024
"""Kafka's ``socket.request.max.bytes`` default: the largest request a stock broker accepts, so
every client is configured to stay below it."""

_SIZE: Final = struct.Struct(">i")

# First bytes of protocols that clients sometimes send to a Kafka port by mistake. Read as a size
# prefix they give absurd sizes; naming the likely cause saves the user a packet capture.
_HTTP_METHODS: Final = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"PRI ")
_TLS_HANDSHAKE_RECORD: Final = 0x16
_TLS_MAJOR_VERSION: Final = 0x03


def _likely_cause(prefix: bytes) -> str:
    if prefix[0] == _TLS_HANDSHAKE_RECORD and prefix[1] == _TLS_MAJOR_VERSION:
        return (
            " (this looks like a TLS handshake: is the client using TLS on a plaintext listener?)"
        )
    if prefix in _HTTP_METHODS:
        return " (this looks like an HTTP request: is an HTTP client pointed at the Kafka port?)"
    return ""


class FrameDecoder:
    """Reassembles frames from a byte stream. Sans-IO: the caller reads the socket and feeds it.

    Use::

        decoder.feed(data)                  # raises FrameError on a bad size prefix
        while (frame := decoder.next_frame()) is not None:
            handle(frame)                   # the body, without its size prefix

    Each size prefix is checked as soon as its four bytes arrive, before the body is waited for,
    so a bad stream is refused without buffering the body it announces. After a
    :class:`FrameError` the decoder stays failed: ``feed`` raises again, and ``next_frame``
    returns the complete frames that came before the bad prefix, then raises.

    Bodies are returned as ``bytes``, which kio's native reader requires (it refuses writable
    buffers). Each byte is copied into the buffer and once out into its frame; appending to a
    ``bytearray`` and deleting from its front are amortised O(1) per byte in CPython, so the
    copying stays linear in the bytes fed however small the chunks (no re-copying of a growing
    buffer per chunk).
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._max_frame_bytes = _checked_limit(max_frame_bytes)
        self._buffer = bytearray()
        # Offset in _buffer of the next size prefix not yet checked. Prefixes before it are
        # valid; it may point past the end while the body of the last checked frame arrives.
        self._scan_offset = 0
        self._error: FrameError | None = None

    @property
    def max_frame_bytes(self) -> int:
        """The largest frame body accepted, in bytes (not counting the size prefix)."""
        return self._max_frame_bytes

    @max_frame_bytes.setter
    def max_frame_bytes(self, value: int) -> None:
        # Applies to size prefixes that arrive from now on, so a server can raise the limit once
        # a client has authenticated (Kafka bounds what it reads before authentication).
        self._max_frame_bytes = _checked_limit(value)

    @property
    def buffered_bytes(self) -> int:
        """Bytes fed but not yet returned as frames: the server's signal to stop reading."""
        return len(self._buffer)

    @property
    def at_frame_boundary(self) -> bool:
        """True when no partial frame is buffered: end of stream here is a clean close."""
        return not self._buffer

    @property
    def failed(self) -> bool:
        return self._error is not None

    def feed(self, data: Buffer) -> None:
        """Append ``data`` to the stream; raise :class:`FrameError` on a bad size prefix."""
        if self._error is not None:
            raise self._error
        self._buffer += data
        buffer = self._buffer
        while len(buffer) - self._scan_offset >= SIZE_PREFIX_BYTES:
            (size,) = _SIZE.unpack_from(buffer, self._scan_offset)
            if size < 0 or size > self._max_frame_bytes:
                prefix = bytes(buffer[self._scan_offset : self._scan_offset + SIZE_PREFIX_BYTES])
                self._error = FrameError(self._describe_bad_size(size, prefix))
                raise self._error
            self._scan_offset += SIZE_PREFIX_BYTES + size

    def next_frame(self) -> bytes | None:
        """The body of the next complete frame, or ``None`` until more bytes are fed."""
        buffer = self._buffer
        if self._error is not None and self._scan_offset == 0:
            raise self._error
        if len(buffer) < SIZE_PREFIX_BYTES:
            return None
        (size,) = _SIZE.unpack_from(buffer, 0)
        end = SIZE_PREFIX_BYTES + size
        if len(buffer) < end:
            return None
        # One copy out of the buffer. The views are released before the buffer is resized,
        # which a bytearray refuses while a view on it is alive.
        with memoryview(buffer) as view, view[SIZE_PREFIX_BYTES:end] as body:
            frame = bytes(body)
        del buffer[:end]
        self._scan_offset -= end
        return frame

    def frames(self) -> Iterator[bytes]:
        """Yield every complete frame now buffered."""
        while (frame := self.next_frame()) is not None:
            yield frame

    def _describe_bad_size(self, size: int, prefix: bytes) -> str:
        if size < 0:
            problem = f"frame size prefix is negative ({size})"
            advice = ""
        else:
            problem = f"frame of {size} bytes exceeds max_frame_bytes={self._max_frame_bytes}"
            advice = " (raise max_frame_bytes if a client really sends requests this large)"
        return problem + (_likely_cause(prefix) or advice)


def _checked_limit(max_frame_bytes: int) -> int:
    if not 0 < max_frame_bytes <= FRAME_BYTES_LIMIT:
        raise ValueError(
            f"max_frame_bytes must be between 1 and {FRAME_BYTES_LIMIT}, got {max_frame_bytes}"
        )
    return max_frame_bytes


def encode_frame(parts: Iterable[Buffer]) -> list[Buffer]:
    """Prefix a body made of ``parts`` with its size: ``[size_prefix, *parts]``.

    The parts are not copied or joined: write the list with ``writelines`` (or ``sendmsg``), so
    record bytes read from a segment go out as they are. Raises :class:`EncodeError` when the
    parts add up to more than an int32 size prefix can describe.
    """
    body = list(parts)
    size = 0
    for part in body:
        with memoryview(part) as view:
            size += view.nbytes
    if size > FRAME_BYTES_LIMIT:
        raise EncodeError(f"frame body of {size} bytes exceeds the int32 size prefix")
    return [_SIZE.pack(size), *body]


def encode_frame_bytes(body: Buffer) -> bytes:
    """One frame as one ``bytes``: the size prefix followed by ``body`` (copied once)."""
    with memoryview(body) as view:
        if view.nbytes > FRAME_BYTES_LIMIT:
            raise EncodeError(f"frame body of {view.nbytes} bytes exceeds the int32 size prefix")
        return b"".join((_SIZE.pack(view.nbytes), view))
