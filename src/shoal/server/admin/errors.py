"""The admin API's error answers: an HTTP status and a JSON body ``{"error", "message"}``.

``error`` is a stable slug a page can switch on; ``message`` is for people. Bodies are JSON, so
whatever the caller sent (a topic name with markup in it) comes back as inert text.
"""

from __future__ import annotations

from typing import Final

from starlette.responses import JSONResponse

from shoal.protocol import ErrorCode

JSON_MEDIA_TYPE: Final = "application/json"


class ApiError(Exception):
    """Raised by a route; answered by :func:`error_response`. Raised before any change."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.error, "message": exc.message}, status_code=exc.status)


_STATUS_BY_KAFKA_ERROR: Final = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: 404,
    ErrorCode.TOPIC_ALREADY_EXISTS: 409,
    ErrorCode.POLICY_VIOLATION: 403,
    ErrorCode.TOPIC_AUTHORIZATION_FAILED: 403,
    ErrorCode.GROUP_AUTHORIZATION_FAILED: 403,
    ErrorCode.CLUSTER_AUTHORIZATION_FAILED: 403,
    ErrorCode.GROUP_ID_NOT_FOUND: 404,
    ErrorCode.NON_EMPTY_GROUP: 409,
    ErrorCode.THROTTLING_QUOTA_EXCEEDED: 429,
}
"""Kafka errors with a more precise HTTP status than 400 (bad input)."""


def from_kafka(error_code: int, message: str) -> ApiError:
    """The API error for a Kafka error code the broker raised (TopicError, ConfigError)."""
    code = ErrorCode(error_code)
    return ApiError(_STATUS_BY_KAFKA_ERROR.get(code, 400), code.name.lower(), message)
