"""Sans-IO Kafka protocol codec: framing, headers, messages (kio, pinned), error codes, versions.

Bytes in, objects out, bytes back. Nothing here opens a socket or a file or runs an event loop;
the server reads the socket, feeds a :class:`FrameDecoder`, decodes each frame with
:func:`decode_request`, and writes what :func:`encode_response` returns.
"""

from shoal.protocol._kio import RequestBody, ResponseBody
from shoal.protocol.codec import (
    Request,
    api_versions_fallback_response,
    decode_request,
    decode_response,
    encode_api_versions_fallback,
    encode_request,
    encode_response,
    encode_response_frame,
    encode_response_header_for,
)
from shoal.protocol.errors import (
    DecodeError,
    EncodeError,
    ErrorCode,
    FrameError,
    InvalidRequestError,
    InvalidResponseError,
    ProtocolError,
    UnsupportedVersionError,
    error_code_from_name,
    error_code_from_value,
)
from shoal.protocol.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameDecoder,
    encode_frame,
    encode_frame_bytes,
)
from shoal.protocol.headers import RequestHeader
from shoal.protocol.versions import (
    SUPPORTED_APIS,
    AdvertisedVersions,
    ApiKey,
    ApiVersionRange,
    advertised_versions,
    is_flexible,
    request_header_version,
    response_header_version,
    restrict_to,
)

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "SUPPORTED_APIS",
    "AdvertisedVersions",
    "ApiKey",
    "ApiVersionRange",
    "DecodeError",
    "EncodeError",
    "ErrorCode",
    "FrameDecoder",
    "FrameError",
    "InvalidRequestError",
    "InvalidResponseError",
    "ProtocolError",
    "Request",
    "RequestBody",
    "RequestHeader",
    "ResponseBody",
    "UnsupportedVersionError",
    "advertised_versions",
    "api_versions_fallback_response",
    "decode_request",
    "decode_response",
    "encode_api_versions_fallback",
    "encode_frame",
    "encode_frame_bytes",
    "encode_request",
    "encode_response",
    "encode_response_frame",
    "encode_response_header_for",
    "error_code_from_name",
    "error_code_from_value",
    "is_flexible",
    "request_header_version",
    "response_header_version",
    "restrict_to",
]
