"""Value types for records: what the reader yields and what the builder accepts.

They are ``NamedTuple``s rather than frozen dataclasses because readers create one per record
and a tuple is about twice as cheap to build; they are immutable all the same.

Header keys are Kafka ``String``s. They are decoded with ``surrogateescape`` so that a key that
is not valid UTF-8 (Java's client would not reject it either) survives a decode/encode round
trip byte for byte, which compaction relies on when it rewrites a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from shoal.records.header import BatchHeader

Header = tuple[str, bytes | None]
"""One record header: a key and a nullable value."""

HEADER_KEY_ENCODING = "utf-8"
HEADER_KEY_ERRORS = "surrogateescape"


class Record(NamedTuple):
    """One record as stored in a batch: offset and timestamp are relative to the batch."""

    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    value: bytes | None
    headers: list[Header]


class DecodedRecord(NamedTuple):
    """One record with the batch's base offset and timestamp applied."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[Header]


class DecodedBatch(NamedTuple):
    """A batch's header and every record in it, with absolute offsets and timestamps."""

    header: BatchHeader
    records: list[DecodedRecord]


class SimpleRecord(NamedTuple):
    """A record to build: the builder assigns offsets; ``timestamp=None`` takes the batch's."""

    key: bytes | None = None
    value: bytes | None = None
    headers: Sequence[Header] = ()
    timestamp: int | None = None


class RecordLike(Protocol):
    """What :func:`shoal.records.build_batch` reads from each record.

    :class:`SimpleRecord` and :class:`DecodedRecord` both fit, so decoded records can be built
    into a new batch directly.
    """

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[Header]: ...

    @property
    def timestamp(self) -> int | None: ...
