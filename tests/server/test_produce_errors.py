"""Bad batches in Produce requests: an error code for that partition, nothing written, and the
connection stays open (a Kafka-level failure is an answer, never a dropped connection)."""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.broker.broker_settings import DEFAULT_MESSAGE_MAX_BYTES
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ErrorCode
from shoal.records import (
    Compression,
    SimpleRecord,
    build_batch,
    build_control_batch,
    refresh_crc,
)
from tests.server.support import Arena
from tests.server.wire import WireClient, batch_of, produce_values, record_values

TOPIC = "bad-produce"
I32 = struct.Struct(">i")
BATCH_LENGTH_AT = 8
MAGIC_AT = 16
ATTRIBUTES_AT = 21
LAST_OFFSET_DELTA_AT = 23
RECORD_COUNT_AT = 57


def now_ms() -> int:
    return int(time.time() * 1000)


def patched(batch: bytes, position: int, data: bytes, *, fix_crc: bool) -> bytes:
    out = bytearray(batch)
    out[position : position + len(data)] = data
    if fix_crc:
        refresh_crc(out, 0)
    return bytes(out)


def sized_batch(size: int, compression: Compression = Compression.NONE) -> tuple[bytes, bytes]:
    """A one-record batch of exactly ``size`` bytes (its value padded to fit), and the value."""
    value_bytes = size
    for _ in range(8):
        value = bytes(i % 251 for i in range(value_bytes))
        batch = build_batch(
            [SimpleRecord(key=b"k", value=value, timestamp=now_ms())], compression=compression
        )
        if len(batch) == size:
            return batch, value
        value_bytes += size - len(batch)
    raise AssertionError(f"no one-record batch is exactly {size} bytes")


def batch_of_size(size: int, compression: Compression = Compression.NONE) -> bytes:
    return sized_batch(size, compression)[0]


@pytest.fixture(scope="module")
def client(arena: Arena) -> Iterator[WireClient]:
    """One connection for the whole module: every bad batch must leave it usable."""
    with WireClient(arena.bootstrap) as wire:
        assert wire.metadata([TOPIC]).topics[0].error_code == ErrorCode.NONE
        yield wire


def log_end(client: WireClient) -> int:
    fetched = client.fetch(TOPIC, 0, 0, max_bytes=1)
    assert fetched.error_code == ErrorCode.NONE
    return int(fetched.high_watermark)


def good() -> bytes:
    return batch_of([b"a", b"b", b"c"])


# Each case: the records of one partition and the error code Kafka answers for them.
BAD_BATCHES: dict[str, tuple[Callable[[], bytes | None], ErrorCode]] = {
    "CRC of the last byte": (
        lambda: patched(good(), len(good()) - 1, bytes([good()[-1] ^ 0x01]), fix_crc=False),
        ErrorCode.CORRUPT_MESSAGE,
    ),
    "CRC field itself": (
        lambda: patched(good(), 17, b"\x00\x00\x00\x00", fix_crc=False),
        ErrorCode.CORRUPT_MESSAGE,
    ),
    "CRC of the attributes": (
        lambda: patched(good(), ATTRIBUTES_AT + 1, b"\x01", fix_crc=False),
        ErrorCode.CORRUPT_MESSAGE,
    ),
    "batchLength larger than the bytes": (
        lambda: patched(good(), BATCH_LENGTH_AT, I32.pack(len(good())), fix_crc=False),
        ErrorCode.CORRUPT_MESSAGE,
    ),
    "batchLength smaller than a header": (
        lambda: patched(good(), BATCH_LENGTH_AT, I32.pack(10), fix_crc=False),
        ErrorCode.CORRUPT_MESSAGE,
    ),
    "batchLength negative": (
        lambda: patched(good(), BATCH_LENGTH_AT, I32.pack(-100), fix_crc=False),
        ErrorCode.CORRUPT_MESSAGE,
    ),
    "batch cut short": (lambda: good()[:-5], ErrorCode.CORRUPT_MESSAGE),
    "batch shorter than its header": (lambda: good()[:40], ErrorCode.CORRUPT_MESSAGE),
    "record count not lastOffsetDelta + 1": (
        lambda: patched(good(), RECORD_COUNT_AT, I32.pack(2), fix_crc=True),
        ErrorCode.INVALID_RECORD,
    ),
    "record count 0": (
        lambda: patched(
            patched(good(), RECORD_COUNT_AT, I32.pack(0), fix_crc=False),
            LAST_OFFSET_DELTA_AT,
            I32.pack(-1),
            fix_crc=True,
        ),
        ErrorCode.INVALID_RECORD,
    ),
    "control batch from a client": (
        lambda: build_control_batch(7, 0, commit=True, coordinator_epoch=0, timestamp=now_ms()),
        ErrorCode.INVALID_RECORD,
    ),
    "unknown compression codec 5": (
        lambda: patched(good(), ATTRIBUTES_AT + 1, b"\x05", fix_crc=True),
        ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
    ),
    "two batches in one partition": (lambda: good() + good(), ErrorCode.INVALID_RECORD),
    # message.timestamp.after.max.ms is an hour by default, as in Kafka.
    "a record two hours ahead of the broker's clock": (
        lambda: build_batch(
            [SimpleRecord(b"k", b"v", timestamp=t) for t in (now_ms(), now_ms() + 7_200_000)]
        ),
        ErrorCode.INVALID_TIMESTAMP,
    ),
    "a compressed batch whose last record is two hours ahead": (
        lambda: build_batch(
            [SimpleRecord(b"k", b"v", timestamp=now_ms() + d) for d in (0, 1, 7_200_000)],
            compression=Compression.LZ4,
        ),
        ErrorCode.INVALID_TIMESTAMP,
    ),
    "empty records": (lambda: b"", ErrorCode.INVALID_RECORD),
    "null records": (lambda: None, ErrorCode.INVALID_RECORD),
    "one byte past message.max.bytes": (
        lambda: batch_of_size(DEFAULT_MESSAGE_MAX_BYTES + 1),
        ErrorCode.MESSAGE_TOO_LARGE,
    ),
    "compressed batch one byte past message.max.bytes": (
        # The limit applies to the batch as sent (after compression), as in Kafka; random
        # bytes do not compress, so the padding still counts.
        lambda: incompressible_batch_of_size(DEFAULT_MESSAGE_MAX_BYTES + 1),
        ErrorCode.MESSAGE_TOO_LARGE,
    ),
}


def incompressible_batch_of_size(size: int) -> bytes:
    rng = random.Random(size)
    value_bytes = size
    for _ in range(8):
        value = rng.randbytes(value_bytes)
        batch = build_batch(
            [SimpleRecord(key=b"k", value=value, timestamp=now_ms())],
            compression=Compression.GZIP,
        )
        if len(batch) == size:
            return batch
        value_bytes += size - len(batch)
    raise AssertionError(f"no gzip batch is exactly {size} bytes")


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_bad_batch_gets_its_error_and_writes_nothing(
    arena: Arena, client: WireClient, case: str
) -> None:
    make, expected = BAD_BATCHES[case]
    before = log_end(client)
    answer = client.produce(TOPIC, 0, make())  # type: ignore[arg-type]
    assert ErrorCode(answer.error_code) == expected, answer.error_message
    assert answer.base_offset == -1
    assert log_end(client) == before
    # The same connection goes on working.
    ok = client.produce(TOPIC, 0, good())
    assert ok.error_code == ErrorCode.NONE
    assert (ok.base_offset, log_end(client)) == (before, before + 3)
    arena.healthy.assert_progress()


def test_old_magic_is_invalid_record(client: WireClient) -> None:
    legacy = patched(good(), MAGIC_AT, b"\x01", fix_crc=False)
    answer = client.produce(TOPIC, 0, legacy)
    assert ErrorCode(answer.error_code) == ErrorCode.INVALID_RECORD


def test_unknown_magic_is_corrupt(client: WireClient) -> None:
    before = log_end(client)
    answer = client.produce(TOPIC, 0, patched(good(), MAGIC_AT, b"\x07", fix_crc=False))
    assert ErrorCode(answer.error_code) == ErrorCode.CORRUPT_MESSAGE
    assert log_end(client) == before


def test_batch_of_exactly_message_max_bytes_is_accepted(client: WireClient) -> None:
    batch, value = sized_batch(DEFAULT_MESSAGE_MAX_BYTES)
    before = log_end(client)
    answer = client.produce(TOPIC, 0, batch)
    assert answer.error_code == ErrorCode.NONE
    assert log_end(client) == before + 1
    # max_bytes=1: a Fetch returns the batch that holds the offset even above every limit.
    fetched = client.fetch(TOPIC, 0, before, max_bytes=1)
    assert record_values(fetched.records) == [value]


def test_message_max_bytes_setting_is_the_limit(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(message_max_bytes=4096)
    with WireClient(broker.bootstrap_servers) as wire:
        wire.metadata(["small"])
        at_limit = wire.produce("small", 0, batch_of_size(4096))
        over = wire.produce("small", 0, batch_of_size(4097))
    assert at_limit.error_code == ErrorCode.NONE
    assert ErrorCode(over.error_code) == ErrorCode.MESSAGE_TOO_LARGE


def test_request_level_errors(client: WireClient) -> None:
    before = log_end(client)
    unknown = client.produce("no-such-topic", 0, good())
    no_partition = client.produce(TOPIC, 7, good())
    negative_partition = client.produce(TOPIC, -1, good())
    bad_acks = client.produce(TOPIC, 0, good(), acks=2)
    assert ErrorCode(unknown.error_code) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert ErrorCode(no_partition.error_code) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert ErrorCode(negative_partition.error_code) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert ErrorCode(bad_acks.error_code) == ErrorCode.INVALID_REQUIRED_ACKS
    assert log_end(client) == before


def test_zstd_needs_produce_v7(client: WireClient) -> None:
    zstd = batch_of_size(200, Compression.ZSTD)
    before = log_end(client)
    old = client.produce(TOPIC, 0, zstd, version=6)
    assert ErrorCode(old.error_code) == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    assert log_end(client) == before
    new = client.produce(TOPIC, 0, zstd, version=7)
    assert new.error_code == ErrorCode.NONE


def test_one_bad_partition_does_not_fail_the_others(client: WireClient) -> None:
    """Each partition of a Produce succeeds or fails on its own."""
    corrupt = patched(good(), len(good()) - 1, b"\xff", fix_crc=False)
    values = produce_values(TOPIC, 0, good())
    values["topic_data"] = [
        {
            "name": TOPIC,
            "partition_data": [{"index": 0, "records": corrupt}, {"index": 0, "records": good()}],
        },
        {"name": "no-such-topic", "partition_data": [{"index": 0, "records": good()}]},
    ]
    before = log_end(client)
    response = client.request(0, 9, values)
    codes = [
        [ErrorCode(p.error_code) for p in topic.partition_responses] for topic in response.responses
    ]
    assert codes == [
        [ErrorCode.CORRUPT_MESSAGE, ErrorCode.NONE],
        [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
    ]
    assert log_end(client) == before + 3


BATCH = batch_of([b"flip-me", b"and-me"])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(position=st.integers(BATCH_LENGTH_AT, len(BATCH) - 1), mask=st.integers(1, 255))
def test_any_flipped_byte_is_refused(client: WireClient, position: int, mask: int) -> None:
    """Past baseOffset and the leader epoch (which the broker overwrites or ignores), every byte
    of a batch is covered by its length, magic or CRC: flipping any bits of one must be refused,
    and a flip inside the CRC-covered part is always CORRUPT_MESSAGE (CRC-32C detects every
    burst error of up to 32 bits)."""
    if 12 <= position < MAGIC_AT:
        position = MAGIC_AT  # partitionLeaderEpoch: not checked on produce
    flipped = patched(BATCH, position, bytes([BATCH[position] ^ mask]), fix_crc=False)
    before = log_end(client)
    answer = client.produce(TOPIC, 0, flipped)
    assert answer.error_code != ErrorCode.NONE
    if position > MAGIC_AT:
        assert ErrorCode(answer.error_code) == ErrorCode.CORRUPT_MESSAGE
    assert log_end(client) == before
