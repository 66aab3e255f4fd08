"""Requests in, responses out: frame bodies to kio messages and back.

A request frame (the body :class:`~shoal.protocol.framing.FrameDecoder` returns)::

    request header (v1 or v2, see shoal.protocol.headers) | request message (kio, per version)

A response as :func:`encode_response` returns it, ready to write to the socket::

    size int32 | response header (v0 or v1) | response message

Decoding checks, in order: the fixed header prefix is present; the API key and version are
served (else :class:`UnsupportedVersionError`, carrying the correlation id); the rest of the
header; the message; and that no bytes are left over. Any failure after the version check is an
:class:`InvalidRequestError`: nothing else escapes, whatever the bytes.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from kio.schema.api_versions.v0.response import ApiVersion as ApiVersionV0
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.static.primitive import i16

from shoal.buffers import Buffer
from shoal.invariant import invariant
from shoal.protocol import _kio
from shoal.protocol._kio import RequestBody, ResponseBody
from shoal.protocol.errors import (
    EncodeError,
    ErrorCode,
    InvalidRequestError,
    InvalidResponseError,
    UnsupportedVersionError,
)
from shoal.protocol.frame_writer import FramedResponse
from shoal.protocol.framing import FRAME_BYTES_LIMIT
from shoal.protocol.guard import check_layout
from shoal.protocol.headers import (
    RequestHeader,
    encode_request_header,
    encode_response_header,
    parse_request_header,
    parse_response_header,
    read_request_prefix,
)
from shoal.protocol.versions import (
    API_VERSIONS_FALLBACK_VERSION,
    RESPONSE_HEADER_V1,
    SUPPORTED_APIS,
    ApiKey,
    ApiVersionRange,
    advertised_versions,
    response_header_version,
)

_SIZE: Final = struct.Struct(">i")


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request: its header and its kio message (``body``)."""

    header: RequestHeader
    body: RequestBody


def decode_request(frame: Buffer, apis: Mapping[int, ApiVersionRange] = SUPPORTED_APIS) -> Request:
    """Decode a request frame body (without its size prefix) into header and kio message.

    ``apis`` is the table of what the broker serves (see :func:`shoal.protocol.restrict_to`).
    Raises :class:`UnsupportedVersionError` for a key or version outside it and
    :class:`InvalidRequestError` for malformed bytes. A frame that is not ``bytes`` is copied
    once, because kio's reader refuses writable buffers.
    """
    data = frame if isinstance(frame, bytes) else bytes(frame)
    api_key, api_version, correlation_id = read_request_prefix(data)
    entry = apis.get(api_key)
    if entry is None or not entry.serves(api_version):
        raise _unsupported(api_key, api_version, correlation_id, entry)
    header, offset = parse_request_header(data, flexible=entry.is_flexible(api_version))
    try:
        # Lengths and counts first: kio's native reader aborts the process on a huge count.
        check_layout(_kio.request_class(api_key, api_version), data, offset)
        body, used = _kio.read_request(api_key, api_version, data, offset)
    except Exception as exc:
        # The reader is a pinned third-party native decoder fed untrusted bytes. It signals bad
        # input with several unrelated types (its DecodeError family, ValueError for overlong
        # varints and negative array lengths, OverflowError...); every one of them means "this
        # request cannot be decoded", which is the one answer the server needs.
        raise InvalidRequestError(
            f"malformed {entry.name} v{api_version} request body: {exc}",
            api_key=api_key,
            api_version=api_version,
            correlation_id=correlation_id,
        ) from exc
    trailing = len(data) - offset - used
    if trailing:
        # Kafka ignores bytes after a request body, and real clients send some: librdkafka 2.16
        # appends three to its all-topics Metadata v13. Refusing them would break those clients.
        log.debug("%s v%d request has %d bytes after its body", entry.name, api_version, trailing)
    return Request(header, body)


def _unsupported(
    api_key: int, api_version: int, correlation_id: int, entry: ApiVersionRange | None
) -> UnsupportedVersionError:
    if entry is None:
        message = f"api key {api_key} is not served by this broker"
    elif entry.advertises(api_version):
        message = (
            f"{entry.name} v{api_version} is advertised for client compatibility but not "
            f"served (Kafka 4 removed it); use v{entry.min_version} to v{entry.max_version}"
        )
    else:
        message = (
            f"{entry.name} v{api_version} is not supported; "
            f"this broker serves v{entry.min_version} to v{entry.max_version}"
        )
    return UnsupportedVersionError(
        message,
        api_key=api_key,
        api_version=api_version,
        correlation_id=correlation_id,
        # KIP-511: only ApiVersions gets an answer (see encode_api_versions_fallback).
        closes_connection=api_key != ApiKey.API_VERSIONS,
    )


def encode_response(
    correlation_id: int, api_key: int, api_version: int, response: ResponseBody
) -> bytes:
    """A complete response frame, **size prefix included**, ready to write to the socket.

    The header version follows the API table (v1 for flexible versions, v0 otherwise and for
    every ApiVersions response). ``response`` must be kio's class for ``(api_key, api_version)``:
    anything else is a bug in the caller and fails an invariant. A value that does not fit its
    wire type raises :class:`EncodeError`.
    """
    _check_message_type(response, api_key, api_version)
    header = encode_response_header_for(correlation_id, api_key, api_version)
    body = _encode_message(response)
    return _join_frame(header, body)


def encode_response_frame(
    correlation_id: int, api_key: int, api_version: int, response: ResponseBody | FramedResponse
) -> list[Buffer]:
    """A complete response frame as buffers to write in order (size prefix first).

    A :class:`~shoal.protocol.frame_writer.FramedResponse` (Fetch, Produce) frames itself, a
    Fetch handing its record bytes over uncopied; every other response is one ``bytes`` from
    :func:`encode_response`.
    """
    if isinstance(response, FramedResponse):
        invariant(
            api_key == response.api_key,
            f"a {type(response).__name__} does not answer api key {api_key}",
        )
        return response.encode_frame(correlation_id, api_version)
    return [encode_response(correlation_id, api_key, api_version, response)]


def encode_response_header_for(correlation_id: int, api_key: int, api_version: int) -> bytes:
    """The response header bytes for ``(api_key, api_version)``, without size prefix.

    For responses the broker frames itself, e.g. a Fetch response whose record bytes come from a
    segment: ``encode_frame([header, body_start, records, body_end])``.
    """
    flexible = response_header_version(api_key, api_version) == RESPONSE_HEADER_V1
    return encode_response_header(correlation_id, flexible=flexible)


def api_versions_fallback_response(
    apis: Mapping[int, ApiVersionRange] = SUPPORTED_APIS,
) -> ApiVersionsResponseV0:
    """The KIP-511 answer to an ApiVersions request of a version the broker does not serve.

    Version 0 with UNSUPPORTED_VERSION and the advertised (key, min, max) list. Clients look up
    the ApiVersions entry in it and retry with the highest version both sides know (Kafka itself
    lists only that entry; the full list is a superset every client accepts).
    """
    return ApiVersionsResponseV0(
        error_code=_kio.kio_error_code(ErrorCode.UNSUPPORTED_VERSION),
        api_keys=tuple(
            ApiVersionV0(
                api_key=i16(entry.api_key),
                min_version=i16(entry.min_version),
                max_version=i16(entry.max_version),
            )
            for entry in advertised_versions(apis)
        ),
    )


def encode_api_versions_fallback(
    correlation_id: int, apis: Mapping[int, ApiVersionRange] = SUPPORTED_APIS
) -> bytes:
    """:func:`api_versions_fallback_response` as a complete frame (size prefix included)."""
    return encode_response(
        correlation_id,
        ApiKey.API_VERSIONS,
        API_VERSIONS_FALLBACK_VERSION,
        api_versions_fallback_response(apis),
    )


def encode_request(header: RequestHeader, body: RequestBody) -> bytes:
    """A complete request frame (size prefix included), as a client sends it.

    For tests and for shoal's own tools; the broker never sends requests. The header version
    follows the message class: v2 for flexible versions, v1 otherwise.
    """
    _check_message_type(body, header.api_key, header.api_version)
    flexible = type(body).__flexible__
    return _join_frame(encode_request_header(header, flexible=flexible), _encode_message(body))


def decode_response(frame: Buffer, api_key: int, api_version: int) -> tuple[int, ResponseBody]:
    """``(correlation_id, message)`` of a response frame body; the client supplies the version.

    For tests and for shoal's own tools. Raises :class:`InvalidResponseError` for malformed bytes.
    """
    data = frame if isinstance(frame, bytes) else bytes(frame)
    flexible = response_header_version(api_key, api_version) == RESPONSE_HEADER_V1
    try:
        correlation_id, offset = parse_response_header(data, flexible=flexible)
        body, used = _kio.read_response(api_key, api_version, data, offset)
    except Exception as exc:
        # As in decode_request: any failure to read untrusted bytes is one kind of error.
        raise InvalidResponseError(
            f"malformed response (api key {api_key} v{api_version}): {exc}",
            api_key=api_key,
            api_version=api_version,
        ) from exc
    if offset + used != len(data):
        raise InvalidResponseError(
            f"response (api key {api_key} v{api_version}) has "
            f"{len(data) - offset - used} bytes after its body",
            api_key=api_key,
            api_version=api_version,
            correlation_id=correlation_id,
        )
    return correlation_id, body


def _check_message_type(message: RequestBody | ResponseBody, api_key: int, version: int) -> None:
    cls = type(message)
    invariant(
        cls.__api_key__ == api_key and cls.__version__ == version,
        f"{cls.__module__}.{cls.__qualname__} is api key {cls.__api_key__} "
        f"v{cls.__version__}, not api key {api_key} v{version}",
    )


def _encode_message(message: RequestBody | ResponseBody) -> bytes:
    try:
        return _kio.write_entity(message)
    except Exception as exc:
        # kio's writer reports out-of-range values as OutOfBoundValue, struct.error or
        # TypeError depending on the field type; all mean the message cannot be sent as built.
        cls = type(message)
        raise EncodeError(
            f"cannot encode {cls.__qualname__} (api key {cls.__api_key__} "
            f"v{cls.__version__}): {exc}"
        ) from exc


def _join_frame(header: bytes, body: bytes) -> bytes:
    size = len(header) + len(body)
    if size > FRAME_BYTES_LIMIT:
        raise EncodeError(f"frame body of {size} bytes exceeds the int32 size prefix")
    return b"".join((_SIZE.pack(size), header, body))
