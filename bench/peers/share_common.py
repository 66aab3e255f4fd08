"""What the share-group bench's consumer children share, whatever system they read from.

A run has ``consumers`` child processes reading one queue together. Each record's value starts
with its id (8 bytes, big-endian); every ``RELEASE_EVERY``-th id is handed back (Kafka RELEASE,
AMQP nack with requeue) on its first delivery, stamped with CLOCK_MONOTONIC (one clock for
every process on the machine), and the stamp of its redelivery, to whichever child gets it,
gives the redelivery latency: from the consumer's decision to give the record back to the
record arriving again. Every other delivery is acknowledged one record at a time (ACCEPT,
basic.ack without ``multiple``): per-record acknowledgement is what queues are for.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Final

ID: Final = struct.Struct(">q")
RELEASE_EVERY: Final = 100
"""One record in a hundred is given back once: enough redeliveries for a p99 in a full run
(500 of 50,000 records), few enough not to change the throughput figure much."""
READY_TIMEOUT_S: Final = 120.0
"""How long the parent waits for every child to have its client built and subscribed."""
RUN_TIMEOUT_S: Final = 600.0
"""A run that has not acknowledged every record by then has stalled: it fails, loudly."""
POLL_S: Final = 0.1


def value_of(record_id: int, size: int) -> bytes:
    return ID.pack(record_id) + b"\0" * max(0, size - ID.size)


def id_of(value: bytes) -> int:
    record_id: int = ID.unpack_from(value)[0]
    return record_id


def released_on_first_delivery(record_id: int) -> bool:
    return record_id % RELEASE_EVERY == 0


@dataclass
class ChildResult:
    """What one consumer child did, sent back to the parent when it stops."""

    accepted: int = 0
    first_record_ns: int | None = None
    released_ns: dict[int, int] = field(default_factory=dict)
    """Record id -> when this child gave it back."""
    redelivered_ns: dict[int, int] = field(default_factory=dict)
    """Record id -> when this child got it again (delivery count above 1)."""
    max_delivery_count: int = 0
    cpu_s: float = 0.0
    """CPU the child used from the start signal to its stop (all its threads): near the
    run's length means the client, not the broker, may be what limits it."""
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "first_record_ns": self.first_record_ns,
            "released_ns": self.released_ns,
            "redelivered_ns": self.redelivered_ns,
            "max_delivery_count": self.max_delivery_count,
            "cpu_s": self.cpu_s,
            "error": self.error,
        }


@dataclass
class Shared:
    """The run's cross-process state: created by the parent from a spawn context."""

    accepted: Any
    """multiprocessing.Value('q'): records acknowledged so far, all children together."""
    ready: Any
    """multiprocessing.Value('q'): children subscribed and waiting for ``start``."""
    start: Any
    """multiprocessing.Event: every child begins reading at once."""
    target: int
    """The run ends when ``accepted`` reaches this (every record acknowledged once)."""
    results: Any
    """multiprocessing.Queue of ChildResult.as_json()."""

    def add_accepted(self, count: int) -> None:
        with self.accepted.get_lock():
            self.accepted.value += count

    def done(self) -> bool:
        return bool(self.accepted.value >= self.target)
