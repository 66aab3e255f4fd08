"""shoal's own Fetch response framing is byte for byte what kio's generic writer produces, for
every served version, and it hands the record bytes over without copying them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.protocol import ApiKey, EncodeError, decode_response, encode_response
from shoal.protocol.build import response_for
from shoal.protocol.fetch_response import (
    FETCH_MAX_VERSION,
    FETCH_MIN_VERSION,
    AbortedTransaction,
    FetchedPartition,
    FetchedTopic,
    FetchResponse,
    NodeEndpoint,
)

VERSIONS = range(FETCH_MIN_VERSION, FETCH_MAX_VERSION + 1)

i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
error_codes = st.sampled_from([0, 1, 3, 6, 74, 100])

partitions = st.builds(
    FetchedPartition,
    partition_index=i32,
    error_code=error_codes,
    high_watermark=i64,
    last_stable_offset=i64,
    log_start_offset=i64,
    records=st.binary(max_size=300),
    aborted_transactions=st.none()
    | st.lists(st.builds(AbortedTransaction, producer_id=i64, first_offset=i64), max_size=3),
    preferred_read_replica=i32,
)
topics = st.builds(
    FetchedTopic,
    name=st.text(max_size=20),
    topic_id=st.uuids(),
    partitions=st.lists(partitions, max_size=4),
)
responses = st.builds(
    FetchResponse,
    topics=st.lists(topics, max_size=3),
    throttle_time_ms=st.integers(0, 2**31 - 1),
    error_code=error_codes,
    session_id=i32,
    node_endpoints=st.lists(
        st.builds(
            NodeEndpoint,
            node_id=i32,
            host=st.text(max_size=20),
            port=i32,
            rack=st.none() | st.text(max_size=8),
        ),
        max_size=2,
    ),
)


def as_kio_values(response: FetchResponse, version: int) -> dict[str, Any]:
    endpoints = [
        {"node_id": e.node_id, "host": e.host, "port": e.port, "rack": e.rack}
        for e in response.node_endpoints
    ]
    # Sent from v16 only: shoal leaves them out of older versions, as Kafka does.
    return {
        "node_endpoints": endpoints if version >= 16 else [],
        "throttle_time": response.throttle_time_ms,
        "error_code": response.error_code,
        "session_id": response.session_id,
        "responses": [
            {
                "topic": t.name,
                "topic_id": t.topic_id,
                "partitions": [
                    {
                        "partition_index": p.partition_index,
                        "error_code": p.error_code,
                        "high_watermark": p.high_watermark,
                        "last_stable_offset": p.last_stable_offset,
                        "log_start_offset": p.log_start_offset,
                        "aborted_transactions": (
                            None
                            if p.aborted_transactions is None
                            else [
                                {"producer_id": a.producer_id, "first_offset": a.first_offset}
                                for a in p.aborted_transactions
                            ]
                        ),
                        "preferred_read_replica": p.preferred_read_replica,
                        "records": bytes(p.records),
                    }
                    for p in t.partitions
                ],
            }
            for t in response.topics
        ],
    }


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=60, deadline=None)
@given(response=responses, correlation_id=i32)
def test_same_bytes_as_kio(version: int, response: FetchResponse, correlation_id: int) -> None:
    ours = b"".join(response.encode_frame(correlation_id, version))
    kio_body = response_for(ApiKey.FETCH, version, as_kio_values(response, version))
    theirs = encode_response(correlation_id, ApiKey.FETCH, version, kio_body)
    assert ours == theirs
    # And a client reads it back: the records of every partition, unchanged.
    got_id, decoded = decode_response(ours[4:], ApiKey.FETCH, version)
    assert got_id == correlation_id
    got = [bytes(p.records or b"") for t in decoded.responses for p in t.partitions]
    assert got == [bytes(p.records) for t in response.topics for p in t.partitions]


def test_record_buffers_are_handed_over_not_copied() -> None:
    first, second = bytearray(b"a" * 1000), memoryview(b"b" * 2000)
    response = FetchResponse(
        topics=[
            FetchedTopic(
                "t",
                uuid.uuid4(),
                [
                    FetchedPartition(0, 0, 10, 10, 0, first),
                    FetchedPartition(1, 0, 10, 10, 0, b""),
                    FetchedPartition(2, 0, 10, 10, 0, second),
                ],
            )
        ]
    )
    for version in VERSIONS:
        parts = response.encode_frame(1, version)
        assert any(part is first for part in parts), version
        assert any(part is second for part in parts), version
        # Framing between the records is joined: size prefix, then at most 2 buffers a record.
        assert len(parts) <= 1 + 2 * 2 + 1


def test_unserved_versions_are_refused() -> None:
    response = FetchResponse(topics=[])
    with pytest.raises(EncodeError):
        response.encode_frame(1, FETCH_MIN_VERSION - 1)
    with pytest.raises(EncodeError):
        response.encode_frame(1, FETCH_MAX_VERSION + 1)
