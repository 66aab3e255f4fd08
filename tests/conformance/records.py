"""Records that conformance tests send through real clients, and the checks on what comes back.

A data set is deterministic (seeded) and varied where clients and brokers get things wrong:
binary values of many sizes (empty and null included), null keys, several headers per record
with repeated keys, empty and binary header values, and records without headers. Every record
carries its sequence number in its value, so a reordering or a duplicate names itself.

The checks compare, partition by partition and in the order the consumer delivered them, every
key, value and header with what was sent, and check the offsets run contiguously. They report
the first difference instead of a diff of 100,000 records.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from shoal.records import Compression, read_header, split_batches
from tests.server.wire import WireClient

Headers = tuple[tuple[str, bytes | None], ...]

TIMEOUT_S: Final = 90.0
"""Bound on one produce-and-consume phase of a test: generous for two loaded CI cores; a
broker that loses records fails by this deadline rather than hanging the suite."""


@dataclass(frozen=True, slots=True)
class Sent:
    partition: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Got:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int


def dataset(
    count: int,
    partitions: int,
    *,
    seed: int,
    value_bytes_max: int = 200,
    nulls: bool = True,
    null_header_values: bool = False,
    timestamps_from_ms: int | None = None,
) -> list[Sent]:
    """``count`` records spread unevenly over ``partitions``.

    ``nulls``: some keys and values are null (kcat cannot send those). ``null_header_values``:
    some header values are null (only librdkafka's clients can send those).
    ``timestamps_from_ms``: record i gets that time + i seconds (else the producer stamps them).
    """
    rng = random.Random(seed)
    records = []
    for i in range(count):
        partition = rng.randrange(partitions) if i >= partitions else i
        key = None if nulls and i % 97 == 13 else f"key-{seed}-{i}".encode()
        # Half random, half repetitive: binary, and still compressible, so that a batch of
        # them is smaller compressed and clients do send it compressed.
        size = rng.randrange(value_bytes_max)
        value: bytes | None = (
            f"{i}|".encode() + rng.randbytes(size // 2) + bytes([i % 256]) * (size - size // 2)
        )
        if nulls and i % 89 == 7 and key is not None:  # a null key and value: some clients refuse
            value = None
        headers: list[tuple[str, bytes | None]] = []
        if i % 5:
            headers = [("seq", str(i).encode()), ("bin", rng.randbytes(rng.randrange(8)))]
            if i % 3 == 0:
                headers.append(("empty", b""))
                headers.append(("seq", b"repeated key"))
            if null_header_values and i % 7 == 0:
                headers.append(("null", None))
        timestamp = None if timestamps_from_ms is None else timestamps_from_ms + i * 1000
        records.append(Sent(partition, key, value, tuple(headers), timestamp))
    return records


def by_partition(records: Iterable[Sent]) -> dict[int, list[Sent]]:
    out: dict[int, list[Sent]] = defaultdict(list)
    for record in records:
        out[record.partition].append(record)
    return out


def assert_same_records(
    sent: Sequence[Sent],
    got: Sequence[Got],
    *,
    start_offsets: Mapping[int, int] | None = None,
) -> None:
    """``got`` holds exactly ``sent``: per partition, in order, at contiguous offsets.

    ``start_offsets``: the offset each partition's first record must have (default 0).
    """
    expected = by_partition(sent)
    delivered: dict[int, list[Got]] = defaultdict(list)
    for record in got:
        delivered[record.partition].append(record)
    extra = sorted(set(delivered) - set(expected))
    assert not extra, f"records arrived from partitions nobody produced to: {extra}"
    for partition, want in sorted(expected.items()):
        have = delivered.get(partition, [])
        first = (start_offsets or {}).get(partition, 0)
        for index, (w, h) in enumerate(zip(want, have, strict=False)):
            where = f"partition {partition}, record {index} (offset {h.offset})"
            assert h.offset == first + index, f"{where}: expected offset {first + index}"
            assert h.key == w.key, f"{where}: key {h.key!r}, sent {w.key!r}"
            assert h.value == w.value, f"{where}: value {h.value!r:.80}, sent {w.value!r:.80}"
            assert h.headers == w.headers, f"{where}: headers {h.headers}, sent {w.headers}"
            if w.timestamp_ms is not None:
                assert h.timestamp_ms == w.timestamp_ms, f"{where}: timestamp {h.timestamp_ms}"
        assert len(have) == len(want), (
            f"partition {partition}: {len(have)} records delivered, {len(want)} sent"
        )


def assert_stored_with(bootstrap: str, topic: str, partitions: int, codec: str) -> None:
    """The batches stored in ``topic`` are compressed with ``codec`` (none, gzip, snappy...).

    What a client claims to do and what it sends can differ: librdkafka silently sends every
    batch uncompressed to a broker that does not advertise Produce v0 (KAFKA-18659). Clients
    may also send one batch uncompressed when compressing did not make it smaller (librdkafka
    and kafka-python do, for a batch of a record or two), so uncompressed batches are allowed
    beside compressed ones, but at least one must carry the codec.
    """
    wanted = Compression[codec.upper()]
    codecs = stored_codecs(bootstrap, topic, partitions)
    assert wanted in codecs, f"no batch is compressed with {codec}: {sorted(codecs)}"
    assert codecs <= {wanted, Compression.NONE}, f"batches with other codecs: {sorted(codecs)}"


def stored_codecs(bootstrap: str, topic: str, partitions: int) -> set[Compression]:
    """The compression codecs of every batch stored in ``topic``, read raw from the broker."""
    codecs = set()
    with WireClient(bootstrap) as client:
        for partition in range(partitions):
            offset = 0
            while True:
                fetched = client.fetch(topic, partition, offset, max_bytes=4 << 20)
                assert fetched.error_code == 0
                data = memoryview(fetched.records or b"")
                spans = split_batches(data)
                if not spans:
                    break
                for position, size in spans:
                    header = read_header(data[position : position + size])
                    codecs.add(header.compression)
                    offset = header.base_offset + header.last_offset_delta + 1
    return codecs
