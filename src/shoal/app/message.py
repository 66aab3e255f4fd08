"""What a handler sees besides its decoded value: where the record came from and its metadata."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

Headers = list[tuple[str, bytes]]
"""Kafka headers: ordered, and a name may repeat, so a list of pairs rather than a dict."""

MESSAGE_ID_HEADER = "shoal.message-id"
"""Set by every shoal publisher; idempotent subscribers deduplicate on it."""
CAUSATION_ID_HEADER = "shoal.causation-id"
"""On a handler's output record: the message id of the record whose handler produced it."""
_DERIVED_ID_NAMESPACE = uuid.UUID("5d1c1d4e-59a8-4b36-9f0e-0c2b8f3b7a61")


def derived_message_id(source_id: str, label: str) -> str:
    """The id of a record published because of record ``source_id``: the same every time the
    source is redelivered, so an idempotent consumer downstream applies it once."""
    return uuid.uuid5(_DERIVED_ID_NAMESPACE, f"{label}/{source_id}").hex


def caused_by_headers(source: Message, label: str) -> Headers:
    """The causation header and the derived message id of a record published because of
    ``source`` (``label`` tells apart the records one source causes); [] without a source id."""
    if source.message_id is None:
        return []
    return [
        (CAUSATION_ID_HEADER, source.message_id.encode()),
        (MESSAGE_ID_HEADER, derived_message_id(source.message_id, label).encode()),
    ]


@dataclass(slots=True)
class Message:
    """One consumed record. ``value`` is the raw payload; handlers usually take it decoded.

    Not frozen: a frozen dataclass costs three times as much to build, and one is built per
    record on the hot path. Treat it as read-only all the same.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)
    timestamp_ms: int = 0
    transaction: Any = field(default=None, compare=False, repr=False)
    """For an idempotent subscriber on a store that can (SQLite): the connection whose open
    transaction also holds the dedup record. Writes made through it commit together with it,
    so a redelivered message can never apply its effect twice. None otherwise."""
    delivery_count: int | None = None
    """For a queue subscriber (``queue=True``): how many times the queue has delivered this
    record, this delivery included (Kafka share groups count it on the broker). None for
    records read by a consumer group, which has no such count."""

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name`` (Kafka allows repeats; the last one wins)."""
        found: bytes | None = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found

    @property
    def message_id(self) -> str | None:
        raw = self.header(MESSAGE_ID_HEADER)
        return None if raw is None else raw.decode("utf-8", "replace")
