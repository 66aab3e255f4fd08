"""The headers that carry a record's history through its retry topics.

A record on ``<topic>.retry.<n>`` remembers where it came from (so its DLQ record and a redrive
name the original topic, partition and offset), which delivery comes next, when it is due, and
when it first failed (so the DLQ's first-failure time spans every stage).
"""

from __future__ import annotations

import dataclasses

from shoal.app.message import Headers, Message
from shoal.app.resilience.dlq import Failure
from shoal.clock import Clock

PREFIX = "shoal.retry."
ATTEMPT = PREFIX + "attempt"
"""The number of the delivery this record is waiting for (2 on ``.retry.1``)."""
DUE_MS = PREFIX + "due.ms"
FIRST_FAILURE_MS = PREFIX + "first.failure.ms"
ORIGINAL_TOPIC = PREFIX + "original.topic"
ORIGINAL_PARTITION = PREFIX + "original.partition"
ORIGINAL_OFFSET = PREFIX + "original.offset"
ORIGINAL_TIMESTAMP_MS = PREFIX + "original.timestamp.ms"
EXCEPTION_TYPE = PREFIX + "exception.type"
EXCEPTION_MESSAGE = PREFIX + "exception.message"

EXCEPTION_MESSAGE_BYTES_MAX = 1024


def strip(headers: Headers) -> Headers:
    return [h for h in headers if not h[0].startswith(PREFIX)]


def write(original: Message, headers: Headers, failure: Failure, *, due_ms: int) -> Headers:
    """The headers of the record sent to the next retry topic after ``failure``."""
    kind = type(failure.exc)
    added: Headers = [
        (ATTEMPT, str(failure.attempts + 1).encode()),
        (DUE_MS, str(due_ms).encode()),
        (FIRST_FAILURE_MS, str(failure.first_failure_ms).encode()),
        (ORIGINAL_TOPIC, original.topic.encode()),
        (ORIGINAL_PARTITION, str(original.partition).encode()),
        (ORIGINAL_OFFSET, str(original.offset).encode()),
        (ORIGINAL_TIMESTAMP_MS, str(original.timestamp_ms).encode()),
        (EXCEPTION_TYPE, f"{kind.__module__}.{kind.__qualname__}".encode()),
        (
            EXCEPTION_MESSAGE,
            str(failure.exc).encode("utf-8", "replace")[:EXCEPTION_MESSAGE_BYTES_MAX],
        ),
    ]
    return strip(headers) + added


def _int(msg: Message, name: str, default: int) -> int:
    raw = msg.header(name)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def read(msg: Message) -> tuple[int, int | None, Message]:
    """(attempt, first failure ms, the original record) of a record read from a retry topic.

    A record without shoal's headers (someone produced to the retry topic by hand) is treated
    as a second delivery of itself.
    """
    topic = msg.header(ORIGINAL_TOPIC)
    original = dataclasses.replace(
        msg,
        topic=topic.decode() if topic is not None else msg.topic,
        partition=_int(msg, ORIGINAL_PARTITION, msg.partition),
        offset=_int(msg, ORIGINAL_OFFSET, msg.offset),
        timestamp_ms=_int(msg, ORIGINAL_TIMESTAMP_MS, msg.timestamp_ms),
        headers=strip(msg.headers),
    )
    first = msg.header(FIRST_FAILURE_MS)
    return _int(msg, ATTEMPT, 2), (_int(msg, FIRST_FAILURE_MS, 0) if first else None), original


def due_in_ms(msg: Message, clock: Clock) -> int:
    """How long until this retry record may be delivered (0: now)."""
    return max(_int(msg, DUE_MS, 0) - clock.now_ms(), 0)
