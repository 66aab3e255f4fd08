"""Cross-checks against kafka-python's independent RecordBatch v2 reader and builder.

kafka-python needs python-snappy, lz4 and zstandard for those codecs. Where one is not
installed only that codec's cross-check is skipped; shoal's own round trips still cover it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.records import (
    Compression,
    SimpleRecord,
    build_batch,
    build_control_batch,
    decode_batch,
    validate_batch,
    validate_records,
)
from tests.records.helpers import SETTINGS, simple_records
from tests.records.kafka_oracle import DefaultRecordBatch, DefaultRecordBatchBuilder, kafka_codec

LIMIT = 10 * 1024 * 1024
_AVAILABLE = {
    Compression.NONE: True,
    Compression.GZIP: kafka_codec.has_gzip(),
    Compression.SNAPPY: kafka_codec.has_snappy(),
    Compression.LZ4: kafka_codec.has_lz4(),
    Compression.ZSTD: kafka_codec.has_zstd(),
}
_NEEDS = {
    Compression.SNAPPY: "python-snappy",
    Compression.LZ4: "lz4",
    Compression.ZSTD: "zstandard",
}
CODECS = [
    pytest.param(
        codec,
        marks=pytest.mark.skipif(
            not available,
            reason=f"kafka-python cannot do {codec.name} here without the "
            f"{_NEEDS.get(codec, '?')} package; shoal's own round trip covers it",
        ),
    )
    for codec, available in _AVAILABLE.items()
]


def _kafka_python_records(batch: bytes) -> tuple[Any, list[Any]]:
    reader = DefaultRecordBatch(batch)
    assert reader.validate_crc()
    return reader, list(reader)


@pytest.mark.parametrize("codec", CODECS)
@SETTINGS
@given(records=simple_records(max_size=10), base_offset=st.integers(0, 2**40))
def test_kafka_python_reads_what_shoal_builds(
    codec: Compression, records: list[SimpleRecord], base_offset: int
) -> None:
    batch = build_batch(
        records,
        base_offset=base_offset,
        compression=codec,
        producer_id=9,
        producer_epoch=2,
        base_sequence=40,
        transactional=True,
    )
    reader, read = _kafka_python_records(batch)
    assert reader.compression_type == codec
    assert (reader.producer_id, reader.producer_epoch, reader.base_sequence) == (9, 2, 40)
    assert reader.is_transactional and not reader.is_control_batch
    assert reader.base_offset == base_offset
    assert reader.last_offset_delta == len(records) - 1
    assert reader.records_count == len(records)
    assert reader.max_timestamp == max(r.timestamp or 0 for r in records)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in read] == [
        (base_offset + i, r.timestamp, r.key, r.value, list(r.headers))
        for i, r in enumerate(records)
    ]


@pytest.mark.parametrize("codec", CODECS)
@SETTINGS
@given(records=simple_records(max_size=10))
def test_shoal_reads_what_kafka_python_builds(
    codec: Compression, records: list[SimpleRecord]
) -> None:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=False,
        producer_id=5,
        producer_epoch=1,
        base_sequence=0,
        batch_size=LIMIT,
    )
    for offset, record in enumerate(records):
        builder.append(offset, record.timestamp, record.key, record.value, list(record.headers))
    batch = bytes(builder.build())
    # kafka-python sends a batch uncompressed when compression does not make it smaller.
    header = validate_batch(batch, max_batch_bytes=LIMIT)
    assert header.compression in (codec, Compression.NONE)
    assert validate_records(batch, max_uncompressed_bytes=LIMIT).record_count == len(records)
    decoded = decode_batch(batch, max_uncompressed_bytes=LIMIT)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in decoded.records] == [
        (i, r.timestamp, r.key, r.value, list(r.headers)) for i, r in enumerate(records)
    ]
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (5, 1, 0)


@pytest.mark.parametrize("codec", CODECS)
def test_compressed_batches_agree_both_ways_on_compressible_data(codec: Compression) -> None:
    # Compressible enough that kafka-python keeps the codec rather than falling back to none.
    records = [SimpleRecord(b"key-%d" % (i % 7), b"value " * 50, timestamp=i) for i in range(200)]
    builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, LIMIT)
    for offset, record in enumerate(records):
        builder.append(offset, record.timestamp, record.key, record.value, [])
    theirs = bytes(builder.build())
    ours = build_batch(records, compression=codec)
    assert validate_batch(theirs, max_batch_bytes=LIMIT).compression == codec
    for batch in (theirs, ours):
        _reader, read = _kafka_python_records(batch)
        decoded = decode_batch(batch, max_uncompressed_bytes=LIMIT).records
        assert [(r.key, r.value) for r in read] == [(r.key, r.value) for r in records]
        assert [(r.key, r.value) for r in decoded] == [(r.key, r.value) for r in records]


@pytest.mark.parametrize("commit", [True, False])
def test_kafka_python_reads_shoal_transaction_markers(commit: bool) -> None:
    marker = build_control_batch(12, 4, commit=commit, coordinator_epoch=6, timestamp=1_234)
    reader, (record,) = _kafka_python_records(marker)
    assert reader.is_control_batch and reader.is_transactional
    assert (reader.producer_id, reader.producer_epoch) == (12, 4)
    assert (record.commit, record.abort, record.version) == (commit, not commit, 0)
    assert record.timestamp == 1_234
