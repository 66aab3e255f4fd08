"""The request decoder: framing, request headers and every served API key and version's body.

Property: whatever the bytes, :class:`shoal.protocol.ProtocolError` (a clear error the server
turns into an error response or a closed connection) is the only exception; no hang, no abort.

The first byte picks a mode. A raw stream is cut into chunks and fed to a
:class:`FrameDecoder` as a socket would deliver it. A body mode writes a well-formed header of
one of the (key, version) pairs the codec knows, chosen by the next two bytes, in front of the
fuzzed body, so the fuzzer reaches every message's layout guard and kio reader instead of
spending its time failing the header.
"""

from __future__ import annotations

import struct
from typing import Final

from shoal.protocol import SUPPORTED_APIS, FrameDecoder, ProtocolError, decode_request

FRAME_BYTES_MAX: Final = 1 << 16
"""A small frame limit (64 KiB) so oversized declared sizes are hit, not just allowed."""
PAIRS: Final = [
    (key, version)
    for key, entry in sorted(SUPPORTED_APIS.items())
    for version in range(entry.min_version, entry.max_version + 1)
]
CLIENT_IDS: Final = (b"\xff\xff", b"\x00\x00", b"\x00\x04fuzz")
_PREFIX: Final = struct.Struct(">hhi")


def one_input(data: bytes) -> None:
    """``data[0]`` even: a raw stream (``data[1]`` sets the chunk size); odd: one body, with
    ``data[1:3]`` picking the (key, version) pair, ``data[3]`` the client id, the rest the body.
    A fixed layout rather than a FuzzedDataProvider, so that seeds can be written by hand."""
    if len(data) < 4:
        return
    if data[0] % 2 == 0:
        _raw_stream(data[2:], chunk=1 + data[1] % 64)
    else:
        pair = PAIRS[int.from_bytes(data[1:3], "big") % len(PAIRS)]
        _one_body(pair, CLIENT_IDS[data[3] % len(CLIENT_IDS)], data[4:])


def body_seed(key: int, version: int, body: bytes) -> bytes:
    """The input that makes :func:`one_input` decode ``body`` as (key, version)."""
    return b"\x01" + PAIRS.index((key, version)).to_bytes(2, "big") + b"\x02" + body


def stream_seed(stream: bytes, chunk: int) -> bytes:
    return b"\x00" + bytes([chunk - 1]) + stream


def _raw_stream(stream: bytes, *, chunk: int) -> None:
    decoder = FrameDecoder(max_frame_bytes=FRAME_BYTES_MAX)
    try:
        for start in range(0, len(stream), chunk):
            decoder.feed(stream[start : start + chunk])
            for frame in decoder.frames():
                try:
                    decode_request(frame)
                except ProtocolError as exc:
                    if exc.closes_connection:
                        return
    except ProtocolError:
        return


def _one_body(pair: tuple[int, int], client_id: bytes, body: bytes) -> None:
    key, version = pair
    tags = b"\x00" if SUPPORTED_APIS[key].is_flexible(version) else b""
    frame = _PREFIX.pack(key, version, 7) + client_id + tags + body
    try:
        decode_request(frame)
    except ProtocolError:
        pass
