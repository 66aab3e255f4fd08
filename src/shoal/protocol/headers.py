"""Request and response headers, read and written by hand (they are small and fixed).

Request header v1 (non-flexible versions) and v2 (flexible versions), big-endian::

     0  request_api_key      int16
     2  request_api_version  int16
     4  correlation_id       int32
     8  client_id            int16 length N (-1 = null), then N bytes of UTF-8
    ..  tagged fields        v2 only: uvarint count, then per field uvarint tag, uvarint size, data
    ..  body

The client id stays a non-compact string in v2 (KIP-482 kept it so): a broker reads it before it
knows whether it serves the version, and has to answer ApiVersions requests of future versions.

Response header v0 (non-flexible versions, and every ApiVersions response) and v1::

     0  correlation_id       int32
     4  tagged fields        v1 only; shoal writes none, which is a single 0 byte
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from shoal.protocol.errors import DecodeError, InvalidRequestError

REQUEST_PREFIX_BYTES: Final = 8
"""api_key, api_version and correlation_id: what is read before the version is checked."""

UVARINT_MAX_BYTES: Final = 5
"""An unsigned varint carries 32 bits in at most 5 bytes; Kafka rejects longer ones."""

INT32_MAX: Final = 2**31 - 1

_PREFIX: Final = struct.Struct(">hhi")
_INT16: Final = struct.Struct(">h")
_INT32: Final = struct.Struct(">i")
UINT32_MAX: Final = 2**32 - 1
_ONE_BYTE_UVARINT: Final = tuple(bytes((n,)) for n in range(0x80))
_NO_TAGGED_FIELDS: Final = b"\x00"


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """The decoded header of a request."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def read_request_prefix(frame: bytes) -> tuple[int, int, int]:
    """``(api_key, api_version, correlation_id)``: the fixed part common to every header version."""
    if len(frame) < REQUEST_PREFIX_BYTES:
        raise InvalidRequestError(
            f"request of {len(frame)} bytes is shorter than the {REQUEST_PREFIX_BYTES}-byte "
            "header prefix (api key, api version, correlation id)"
        )
    api_key, api_version, correlation_id = _PREFIX.unpack_from(frame, 0)
    return api_key, api_version, correlation_id


def parse_request_header(frame: bytes, *, flexible: bool) -> tuple[RequestHeader, int]:
    """Decode the request header (v2 when ``flexible``, else v1); return it and the body offset.

    Raises :class:`InvalidRequestError` carrying the correlation id when the header is malformed.
    """
    api_key, api_version, correlation_id = read_request_prefix(frame)
    try:
        client_id, offset = _read_client_id(frame, REQUEST_PREFIX_BYTES)
        if flexible:
            offset = skip_tagged_fields(frame, offset)
    except DecodeError as exc:
        raise InvalidRequestError(
            f"malformed request header: {exc}",
            api_key=api_key,
            api_version=api_version,
            correlation_id=correlation_id,
        ) from exc
    return RequestHeader(api_key, api_version, correlation_id, client_id), offset


def encode_request_header(header: RequestHeader, *, flexible: bool) -> bytes:
    """The bytes of ``header`` (v2 when ``flexible``, else v1)."""
    prefix = _PREFIX.pack(header.api_key, header.api_version, header.correlation_id)
    if header.client_id is None:
        client_id = _INT16.pack(-1)
    else:
        encoded = header.client_id.encode()
        if len(encoded) > 2**15 - 1:
            raise ValueError(f"client id of {len(encoded)} bytes does not fit an int16 length")
        client_id = _INT16.pack(len(encoded)) + encoded
    return prefix + client_id + (_NO_TAGGED_FIELDS if flexible else b"")


def encode_response_header(correlation_id: int, *, flexible: bool) -> bytes:
    """Response header v1 (with an empty tagged-field section) when ``flexible``, else v0."""
    return _INT32.pack(correlation_id) + (_NO_TAGGED_FIELDS if flexible else b"")


def parse_response_header(frame: bytes, *, flexible: bool) -> tuple[int, int]:
    """``(correlation_id, body_offset)`` of a response frame; :class:`DecodeError` if malformed."""
    if len(frame) < _INT32.size:
        raise DecodeError(f"response of {len(frame)} bytes has no correlation id")
    (correlation_id,) = _INT32.unpack_from(frame, 0)
    offset = _INT32.size
    if flexible:
        offset = skip_tagged_fields(frame, offset)
    return correlation_id, offset


def read_uvarint(buf: bytes, offset: int) -> tuple[int, int]:
    """Decode an unsigned varint at ``offset``; return the value and the offset after it."""
    value = 0
    for index in range(UVARINT_MAX_BYTES):
        position = offset + index
        if position >= len(buf):
            raise DecodeError(f"unsigned varint at offset {offset} runs past the end")
        byte = buf[position]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, position + 1
    raise DecodeError(
        f"unsigned varint at offset {offset} is longer than {UVARINT_MAX_BYTES} bytes"
    )


def encode_uvarint(value: int) -> bytes:
    """The unsigned varint of ``value`` (0 <= value < 2**32): compact lengths, tag counts."""
    if not 0 <= value <= UINT32_MAX:
        raise ValueError(f"{value} is not an unsigned 32-bit length")
    if value < 0x80:
        return _ONE_BYTE_UVARINT[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def skip_tagged_fields(buf: bytes, offset: int) -> int:
    """Skip a tagged-field section (KIP-482) at ``offset``; return the offset after it.

    No tagged fields are defined for request or response headers, so their contents are ignored,
    as Kafka ignores unknown tags; only their lengths are checked against the buffer.
    """
    count, offset = read_uvarint(buf, offset)
    if count > INT32_MAX:
        raise DecodeError(f"tagged field count {count} exceeds the int32 range")
    for _ in range(count):
        _tag, offset = read_uvarint(buf, offset)
        size, offset = read_uvarint(buf, offset)
        if size > len(buf) - offset:
            raise DecodeError(f"tagged field of {size} bytes at offset {offset} runs past the end")
        offset += size
    return offset


def _read_client_id(frame: bytes, offset: int) -> tuple[str | None, int]:
    if len(frame) - offset < _INT16.size:
        raise DecodeError("client id length runs past the end")
    (length,) = _INT16.unpack_from(frame, offset)
    offset += _INT16.size
    if length == -1:
        return None, offset
    if length < 0:
        raise DecodeError(f"client id has negative length {length}")
    if length > len(frame) - offset:
        raise DecodeError(f"client id of {length} bytes runs past the end")
    # Undecodable bytes become U+FFFD instead of failing the request: Java's String decoding,
    # which Kafka uses for this field, does the same, so a client Kafka accepts is accepted.
    client_id = frame[offset : offset + length].decode("utf-8", errors="replace")
    return client_id, offset + length
