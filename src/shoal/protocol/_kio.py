"""The one place shoal touches kio's serialisation API, and the only module with casts for it.

kio (pinned) generates a frozen dataclass per API, version and direction, a native (Rust) reader
and a pure-Python writer. Facts about it that the rest of shoal relies on:

- The reader takes ``bytes`` or a read-only ``memoryview``; a writable buffer (``bytearray``)
  is refused with a ValueError.
- ``records`` fields (Produce requests, Fetch responses) decode to ``bytes``: one copy of the
  record data out of the frame, never a per-record decode.
- The writer copies every field into an ``io.BytesIO``, record bytes included; large Fetch
  responses should be framed by the caller (see :func:`shoal.protocol.framing.encode_frame`).
- ``kio.serial.writers`` imports ``asyncio`` for a type alias. That is an import, not I/O, and
  the import-linter contract cannot see through external packages; nothing here runs a loop.
"""

from __future__ import annotations

import io
from functools import cache
from typing import TYPE_CHECKING, TypeAlias, cast

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.protocol import Entity, RequestPayload, ResponsePayload

if TYPE_CHECKING:
    from kio.serial.readers import Reader

RequestBody: TypeAlias = RequestPayload
"""A decoded request message: a kio dataclass such as ``MetadataRequest`` of some version."""

ResponseBody: TypeAlias = ResponsePayload
"""A response message to encode: a kio dataclass such as ``MetadataResponse`` of some version."""


@cache
def request_class(api_key: int, version: int) -> type[RequestBody]:
    """kio's request class for ``(api_key, version)``; kio raises if it has none."""
    return load_request_schema(api_key, version)


@cache
def response_class(api_key: int, version: int) -> type[ResponseBody]:
    """kio's response class for ``(api_key, version)``; kio raises if it has none."""
    return load_response_schema(api_key, version)


@cache
def _request_reader(api_key: int, version: int) -> Reader[RequestBody]:
    # entity_reader is generic over one concrete entity class; the payload union is not one.
    entity_type = cast("type[Entity]", request_class(api_key, version))
    return cast("Reader[RequestBody]", entity_reader(entity_type))


@cache
def _response_reader(api_key: int, version: int) -> Reader[ResponseBody]:
    entity_type = cast("type[Entity]", response_class(api_key, version))
    return cast("Reader[ResponseBody]", entity_reader(entity_type))


def read_request(api_key: int, version: int, frame: bytes, offset: int) -> tuple[RequestBody, int]:
    """Decode the request body at ``offset``; return it and the number of bytes it used.

    Raises whatever kio raises on malformed input (its own DecodeError family, ValueError,
    OverflowError...); the codec translates every one of them.
    """
    return _request_reader(api_key, version)(frame, offset)


def read_response(
    api_key: int, version: int, frame: bytes, offset: int
) -> tuple[ResponseBody, int]:
    return _response_reader(api_key, version)(frame, offset)


def write_entity(entity: RequestBody | ResponseBody) -> bytes:
    """The wire bytes of a request or response message (without header or size prefix)."""
    entity_type = cast("type[Entity]", type(entity))
    buffer = io.BytesIO()
    entity_writer(entity_type)(buffer, cast("Entity", entity))
    return buffer.getvalue()


def kio_error_code(code: int) -> KioErrorCode:
    """kio's enum member for a Kafka error code, as its message fields expect."""
    return KioErrorCode(code)
