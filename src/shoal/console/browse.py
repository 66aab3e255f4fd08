"""The message browser and produce, with a Kafka Consumer and Producer.

A page is read with a short-lived consumer that assigns the partitions at the page's start
offsets (no group: nothing is committed) and stops at each partition's end, once the page is
full, or after :data:`SCAN_RECORDS_MAX` records per partition, so a filter that matches little
never reads a whole topic. Same parameters, answer and cursor as the broker-served browser.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

from shoal.console.errors import ConsoleError, encode_bytes, from_kafka
from shoal.console.group_requests import REQUEST_TIMEOUT_S, admin_result
from shoal.console.kafka_admin import KafkaAdmin

SCAN_RECORDS_MAX: Final = 20_000
"""Records read per partition for one page at most: a rare filter returns a short page and a
cursor instead of scanning on (the broker-served browser stops after 16 MiB likewise)."""
SCAN_DEADLINE_S: Final = 10.0
"""Wall time one page may read for: a page is an interactive answer."""
POLL_BATCH: Final = 500
PAGE_DECODED_BYTES_MAX: Final = 32 * 1024 * 1024
"""Decoded bytes (keys, values, headers) one page collects at most over its partitions, as
the broker-served browser: the page ends before the message that would pass it (a page's
first message per partition always comes)."""
SHOWN_BYTES_MAX: Final = 1024 * 1024
"""A browse page shows at most this many bytes of a key, value or header value (with its
size and ``truncated``); an export writes them whole."""
POLL_WAIT_S: Final = 0.2


def _partition(msg: Message) -> int:
    return int(msg.partition() or 0)


def _offset(msg: Message) -> int:
    return int(msg.offset() or 0)


def _bytes(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def _headers(msg: Message) -> list[tuple[str, bytes | None]]:
    # The stubs type headers() loosely; librdkafka gives (name, bytes or None) pairs.
    pairs: list[tuple[str, str | bytes | None]] = list(msg.headers() or [])  # type: ignore[arg-type]
    return [(k, _bytes(v)) for k, v in pairs]


@dataclass(frozen=True)
class Filters:
    key: str | None = None
    value: str | None = None
    header: str | None = None

    def match(self, msg: Message) -> bool:
        def has(data: bytes | None, part: str) -> bool:
            return data is not None and part in data.decode("utf-8", "replace")

        if self.key is not None and not has(_bytes(msg.key()), self.key):
            return False
        if self.value is not None and not has(_bytes(msg.value()), self.value):
            return False
        if self.header is None:
            return True
        return any(self.header in k or has(v, self.header) for k, v in _headers(msg))


@dataclass
class _Scan:
    position: int
    end: int
    matched: list[Message] = field(default_factory=list)
    scanned: int = 0
    held: int = 0
    """Decoded bytes of ``matched``."""
    full: bool = False
    """The next match would pass the page's byte share: the page ends before it."""

    def done(self, limit: int) -> bool:
        return (
            self.full
            or self.position >= self.end
            or len(self.matched) >= limit
            or (self.scanned >= SCAN_RECORDS_MAX)
        )


def message_json(msg: Message, limit: int | None = None) -> dict[str, Any]:
    """A message as JSON; with ``limit`` (bytes), longer keys and values are cut short."""
    return {
        "partition": _partition(msg),
        "offset": _offset(msg),
        "timestamp": msg.timestamp()[1],
        "key": encode_bytes(_bytes(msg.key()), limit),
        "value": encode_bytes(_bytes(msg.value()), limit),
        "headers": [{"key": k, "value": encode_bytes(v, limit)} for k, v in _headers(msg)],
    }


def message_bytes(msg: Message) -> int:
    """The decoded bytes a message holds: key, value, header keys and values."""
    size = len(msg.key() or b"") + len(msg.value() or b"")
    return size + sum(len(k) + len(v or b"") for k, v in _headers(msg))


def end_offsets(
    admin: KafkaAdmin, topic: str, marks: dict[int, list[int]], until: int | None
) -> dict[int, int]:
    """Where each partition's reading stops: its high watermark, or with ``until`` (ms) its
    first record at or after that time (ListOffsets by time), as the broker-served browser."""
    ends = {p: high for p, (_, high) in marks.items()}
    if until is None:
        return ends
    specs = {TopicPartition(topic, p): OffsetSpec.for_timestamp(until) for p in marks}
    for tp, future in admin.admin.list_offsets(specs).items():
        found = admin_result(future, "list offsets by timestamp").offset
        if found >= 0:
            ends[tp.partition] = min(found, ends[tp.partition])
    return ends


def start_offsets(
    admin: KafkaAdmin,
    topic: str,
    marks: dict[int, list[int]],
    start: str,
    number: int | None,
    limit: int,
) -> dict[int, int]:
    """Where each partition's page starts for ``from=start`` (``number``: its offset or ms)."""
    if start == "oldest":
        return {p: low for p, (low, _) in marks.items()}
    if start == "newest":
        return {p: max(low, high - limit) for p, (low, high) in marks.items()}
    if number is None:
        raise ConsoleError(400, "invalid_parameter", f"from={start} needs the {start} parameter")
    if start == "offset":
        for p, (low, high) in marks.items():
            if not low <= number <= high:
                raise ConsoleError(
                    400,
                    "offset_out_of_range",
                    f"offset {number} is outside {topic}-{p}'s log [{low}, {high}]",
                )
        return dict.fromkeys(marks, number)
    specs = {TopicPartition(topic, p): OffsetSpec.for_timestamp(number) for p in marks}
    starts = {}
    for tp, future in admin.admin.list_offsets(specs).items():
        found = admin_result(future, "list offsets by timestamp").offset
        starts[tp.partition] = marks[tp.partition][1] if found < 0 else found
    return starts


def read_page(
    config: dict[str, str],
    topic: str,
    starts: dict[int, int],
    ends: dict[int, int],
    limit: int,
    filters: Filters,
    clock: Callable[[], float] = time.monotonic,
    *,
    shown_bytes: int | None = SHOWN_BYTES_MAX,
    page_bytes: int = PAGE_DECODED_BYTES_MAX,
) -> dict[str, Any]:
    """One page; ``shown_bytes`` cuts long keys and values (None: whole, for exports), and
    each partition collects at most its share of ``page_bytes``."""
    page, _ = read_page_counted(
        config,
        topic,
        starts,
        ends,
        limit,
        filters,
        clock,
        shown_bytes=shown_bytes,
        page_bytes=page_bytes,
    )
    return page


def read_page_counted(
    config: dict[str, str],
    topic: str,
    starts: dict[int, int],
    ends: dict[int, int],
    limit: int,
    filters: Filters,
    clock: Callable[[], float] = time.monotonic,
    *,
    shown_bytes: int | None = SHOWN_BYTES_MAX,
    page_bytes: int = PAGE_DECODED_BYTES_MAX,
) -> tuple[dict[str, Any], int]:
    """:func:`read_page`, and the decoded bytes of every message it read (matching or not)."""
    read_bytes = 0
    scans = {p: _Scan(starts[p], ends[p]) for p in starts}
    share = max(1, page_bytes // max(1, len(scans)))
    consumer = Consumer(
        {
            **config,
            "group.id": "shoal-console-browser",  # required by the client; never committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        todo = [TopicPartition(topic, p, s.position) for p, s in scans.items() if not s.done(limit)]
        if todo:
            consumer.assign(todo)
        deadline = clock() + SCAN_DEADLINE_S
        while any(not s.done(limit) for s in scans.values()) and clock() < deadline:
            for msg in consumer.consume(POLL_BATCH, POLL_WAIT_S):
                scan = scans.get(_partition(msg))
                if scan is None or scan.done(limit):
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        scan.position = max(scan.position, scan.end)  # past control records
                        continue
                    raise from_kafka(KafkaException(error), f"read {topic}")
                size = message_bytes(msg)
                if filters.match(msg):
                    if scan.matched and scan.held + size > share:
                        scan.full = True  # this message starts the next page
                        continue
                    scan.held += size
                    scan.matched.append(msg)
                scan.position = _offset(msg) + 1
                scan.scanned += 1
                read_bytes += size
    finally:
        consumer.close()
    return _page(scans, starts, ends, limit, shown_bytes), read_bytes


def _page(
    scans: dict[int, _Scan],
    starts: dict[int, int],
    ends: dict[int, int],
    limit: int,
    shown_bytes: int | None,
) -> dict[str, Any]:
    """The earliest ``limit`` matches by timestamp across partitions, and where to go on."""
    every = sorted(
        (m for s in scans.values() for m in s.matched),
        key=lambda m: (m.timestamp()[1], _partition(m), _offset(m)),
    )
    page = every[:limit]
    cursor = {}
    for partition, scan in scans.items():
        shown = [_offset(m) for m in page if _partition(m) == partition]
        if shown:
            cursor[partition] = max(shown) + 1
        elif scan.matched:  # matches that did not fit: the next page starts with them
            cursor[partition] = starts[partition]
        else:
            cursor[partition] = min(scan.position, ends[partition])
    return {
        "messages": [message_json(m, shown_bytes) for m in page],
        "next_cursor": ",".join(f"{p}:{o}" for p, o in sorted(cursor.items())),
        "end_offsets": {str(p): e for p, e in sorted(ends.items())},
    }


class Produce:
    """One producer for the process; each request waits for its record's acknowledgement."""

    def __init__(self, config: dict[str, str]) -> None:
        # murmur2 as Java's default partitioner: a keyed message lands where a Kafka client
        # would put it; acks=all, as the broker-served API answers once on disk.
        self.producer: Producer | None = Producer(
            {**config, "partitioner": "murmur2_random", "acks": "all"}
        )

    def close(self) -> None:
        self.producer = None  # librdkafka's handle goes with the last reference

    def send(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]],
    ) -> dict[str, Any]:
        outcome: list[Any] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            outcome.append(err if err is not None else msg)

        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        producer = self.producer
        if producer is None:
            raise ConsoleError(503, "shutting_down", "the console is shutting down")
        try:
            producer.produce(topic, value, key, headers=headers, on_delivery=delivered, **extra)
        except (KafkaException, BufferError) as exc:
            raise ConsoleError(400, "produce_failed", f"produce to {topic!r}: {exc}") from exc
        producer.flush(REQUEST_TIMEOUT_S)
        if not outcome:
            raise ConsoleError(502, "broker_unreachable", f"produce to {topic!r}: no answer")
        result = outcome[0]
        if isinstance(result, KafkaError):
            raise from_kafka(KafkaException(result), f"produce to {topic!r}")
        return {"topic": topic, "partition": result.partition(), "offset": result.offset()}
