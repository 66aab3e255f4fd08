"""The admin API's error shape (``{"error", "message"}`` with a 4xx/5xx), from Kafka's errors."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException

_STATUS: Final = {
    "TOPIC_ALREADY_EXISTS": 409,
    "NON_EMPTY_GROUP": 409,
    "UNKNOWN_TOPIC_OR_PART": 404,
    "GROUP_ID_NOT_FOUND": 404,
    "TOPIC_AUTHORIZATION_FAILED": 403,
    "GROUP_AUTHORIZATION_FAILED": 403,
    "CLUSTER_AUTHORIZATION_FAILED": 403,
    "THROTTLING_QUOTA_EXCEEDED": 429,
    "SECURITY_DISABLED": 409,
    "RESOURCE_NOT_FOUND": 404,
}
_SLUG: Final = {
    "UNKNOWN_TOPIC_OR_PART": "unknown_topic_or_partition",
    "TOPIC_EXCEPTION": "invalid_topic_exception",
    "MSG_SIZE_TOO_LARGE": "message_too_large",
}
"""librdkafka's names that differ from Kafka's (the broker-served API uses Kafka's)."""


_RETRIABLE: Final = frozenset(
    {
        "UNKNOWN_TOPIC_OR_PART",
        "LEADER_NOT_AVAILABLE",
        "NOT_LEADER_FOR_PARTITION",
        "UNKNOWN_LEADER_EPOCH",
        "FENCED_LEADER_EPOCH",
        "OFFSET_NOT_AVAILABLE",
        "COORDINATOR_LOAD_IN_PROGRESS",
        "COORDINATOR_NOT_AVAILABLE",
        "NOT_COORDINATOR",
        "REQUEST_TIMED_OUT",
    }
)
"""Kafka's retriable errors that librdkafka's admin results do not always flag as such."""


class ConsoleError(Exception):
    """A refusal: answered as ``{"error": slug, "message": message}`` with ``status``."""

    def __init__(self, status: int, slug: str, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.slug = slug
        self.message = message
        self.retriable = retriable
        """A Kafka error the client may retry (a leader moving, metadata not yet there)."""

    def __reduce__(self) -> tuple[Any, tuple[int, str, str, bool]]:
        """Pickled whole (status, slug, retriable): one raised in the console's worker process
        (shoal.console.group_requests) is raised again in the console."""
        return _console_error, (self.status, self.slug, self.message, self.retriable)


def _console_error(status: int, slug: str, message: str, retriable: bool) -> ConsoleError:
    return ConsoleError(status, slug, message, retriable=retriable)


def from_kafka(exc: KafkaException, action: str) -> ConsoleError:
    """A Kafka error as the admin API reports it: the slug is the error's name, lowercased.
    librdkafka's own errors (negative codes: no broker answered, a timeout) are 502."""
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if error is None:
        return ConsoleError(502, "kafka_error", f"{action}: {exc}")
    name = error.name().lstrip("_")
    if error.code() < 0:
        return ConsoleError(502, "broker_unreachable", f"{action}: {error.str()}")
    slug = _SLUG.get(name, name.lower())
    return ConsoleError(
        _STATUS.get(name, 400),
        slug,
        f"{action}: {error.str()}",
        retriable=error.retriable() or name in _RETRIABLE,
    )


def encode_bytes(data: bytes | None, limit: int | None = None) -> dict[str, Any] | None:
    """``{"encoding", "data"}``: UTF-8 text when the bytes are valid UTF-8, else base64. With
    ``limit`` (bytes), longer data is cut to its first ``limit`` bytes, with ``"truncated":
    true`` and ``"size"`` (its whole length), as the broker-served browser."""
    if data is None:
        return None
    if limit is None or len(data) <= limit:
        return _encoded(data, cut=False)
    return {**_encoded(data[:limit], cut=True), "truncated": True, "size": len(data)}


def _encoded(data: bytes, *, cut: bool) -> dict[str, Any]:
    try:
        return {"encoding": "utf-8", "data": data.decode("utf-8")}
    except UnicodeDecodeError as exc:
        if cut and exc.reason == "unexpected end of data":  # a character's first bytes end it
            return {"encoding": "utf-8", "data": data[: exc.start].decode("utf-8")}
    return {"encoding": "base64", "data": base64.b64encode(data).decode("ascii")}


def decode_bytes(value: Any, name: str) -> bytes | None:
    """Bytes given as null, a string (UTF-8), or ``{"encoding", "data"}``."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and isinstance(value.get("data"), str):
        encoding = value.get("encoding", "utf-8")
        if encoding == "utf-8":
            return str(value["data"]).encode("utf-8")
        if encoding == "base64":
            try:
                return base64.b64decode(value["data"], validate=True)
            except binascii.Error as exc:
                raise ConsoleError(400, "invalid_field", f"{name!r} is not base64") from exc
    raise ConsoleError(
        400, "invalid_field", f'{name!r} must be null, a string, or {{"encoding", "data"}}'
    )
