"""What the workload's clients did and saw, recorded as it happens, for the checker.

Each value a producer writes is unique and names its writer and its place in that writer's
sequence (``p3-000041``), so the checker can tell a duplicate from a retry and see reordering
without trusting anything the broker says about it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


def value_of(producer: str, sequence: int) -> str:
    return f"{producer}-{sequence:08d}"


def parse_value(value: str) -> tuple[str, int]:
    producer, _, sequence = value.rpartition("-")
    return producer, int(sequence)


@dataclass(frozen=True, slots=True)
class Write:
    """A produce attempt and how it ended: acknowledged at ``offset``, or failed (unknown)."""

    producer: str
    idempotent: bool
    value: str
    partition: int
    acked: bool
    offset: int | None


@dataclass(frozen=True, slots=True)
class Read:
    """A record a group consumer was handed, within one assignment of the partition."""

    consumer: str
    assignment: int
    """Counts the consumer's assignments: offsets must rise within one, may go back between."""
    partition: int
    offset: int
    value: str


@dataclass(frozen=True, slots=True)
class Resume:
    """A consumer was assigned ``partition`` and will read from the group's committed offset."""

    consumer: str
    assignment: int
    partition: int
    committed: int | None
    """None: the group had no committed offset (the consumer starts from the earliest)."""


@dataclass(frozen=True, slots=True)
class Commit:
    """A commit the broker acknowledged: the group's next record of ``partition`` is ``offset``."""

    consumer: str
    partition: int
    offset: int


Event = Write | Read | Resume | Commit


@dataclass
class History:
    """Every event in the order it was recorded. Thread-safe: producers' delivery callbacks and
    consumers record from their own threads."""

    events: list[Event] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def fault(self, description: str) -> None:
        with self._lock:
            self.faults.append(description)

    @property
    def writes(self) -> list[Write]:
        return [e for e in self.events if isinstance(e, Write)]

    @property
    def reads(self) -> list[Read]:
        return [e for e in self.events if isinstance(e, Read)]

    @property
    def resumes(self) -> list[Resume]:
        return [e for e in self.events if isinstance(e, Resume)]

    @property
    def commits(self) -> list[Commit]:
        return [e for e in self.events if isinstance(e, Commit)]
