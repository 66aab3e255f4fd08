"""Dead-letter records: what failed, where it came from, how often and when.

The DLQ record keeps the original key, value and headers, and adds ``shoal.dlq.*`` headers.
Redrive (:mod:`shoal.app.redrive`) strips those and republishes to the original topic.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from shoal.app.message import Headers, Message

DLQ_SUFFIX = ".dlq"
PREFIX = "shoal.dlq."
ORIGINAL_TOPIC = PREFIX + "original.topic"
ORIGINAL_PARTITION = PREFIX + "original.partition"
ORIGINAL_OFFSET = PREFIX + "original.offset"
ORIGINAL_KEY = PREFIX + "original.key"
ORIGINAL_TIMESTAMP_MS = PREFIX + "original.timestamp.ms"
EXCEPTION_TYPE = PREFIX + "exception.type"
EXCEPTION_MESSAGE = PREFIX + "exception.message"
EXCEPTION_TRACEBACK = PREFIX + "exception.traceback"
ATTEMPTS = PREFIX + "attempts"
FIRST_FAILURE_MS = PREFIX + "first.failure.ms"
LAST_FAILURE_MS = PREFIX + "last.failure.ms"

TRACEBACK_BYTES_MAX = 16 * 1024
"""Deep tracebacks can be large; a record near the broker's size limit must still fit."""


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


@dataclass(frozen=True, slots=True)
class Failure:
    exc: BaseException
    attempts: int
    first_failure_ms: int
    last_failure_ms: int


def dlq_headers(msg: Message, failure: Failure) -> Headers:
    exc = failure.exc
    tb = "".join(traceback.format_exception(exc)).encode("utf-8", "replace")
    kind = type(exc)
    added: Headers = [
        (ORIGINAL_TOPIC, msg.topic.encode()),
        (ORIGINAL_PARTITION, str(msg.partition).encode()),
        (ORIGINAL_OFFSET, str(msg.offset).encode()),
        (ORIGINAL_TIMESTAMP_MS, str(msg.timestamp_ms).encode()),
        (EXCEPTION_TYPE, f"{kind.__module__}.{kind.__qualname__}".encode()),
        (EXCEPTION_MESSAGE, str(exc).encode("utf-8", "replace")),
        (EXCEPTION_TRACEBACK, tb[-TRACEBACK_BYTES_MAX:]),
        (ATTEMPTS, str(failure.attempts).encode()),
        (FIRST_FAILURE_MS, str(failure.first_failure_ms).encode()),
        (LAST_FAILURE_MS, str(failure.last_failure_ms).encode()),
    ]
    if msg.key is not None:
        added.append((ORIGINAL_KEY, msg.key))
    # Earlier shoal.dlq.* headers (a record that failed again after a redrive) are replaced.
    return [h for h in msg.headers if not h[0].startswith(PREFIX)] + added
