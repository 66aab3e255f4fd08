"""shoal's own Produce response framing is byte for byte what kio's generic writer produces,
for every served version, and a client decodes it back to the same answer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.protocol import ApiKey, EncodeError, decode_response, encode_response
from shoal.protocol.build import response_for
from shoal.protocol.produce_response import (
    FIRST_WITH_ERROR_DETAILS,
    PRODUCE_MAX_VERSION,
    PRODUCE_MIN_VERSION,
    ProducedPartition,
    ProducedTopic,
    ProduceResponse,
    RecordError,
)
from shoal.protocol.versions import SUPPORTED_APIS

VERSIONS = range(PRODUCE_MIN_VERSION, PRODUCE_MAX_VERSION + 1)

i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
messages = st.none() | st.text(max_size=30)

partitions = st.builds(
    ProducedPartition,
    index=i32,
    error_code=st.sampled_from([0, 2, 3, 7, 10, 87]),
    base_offset=i64,
    # -1 (CreateTime topics) or a time kio can hold as a datetime (it maps -1 to None).
    log_append_time_ms=st.just(-1) | st.integers(0, 253_402_300_799_999),
    log_start_offset=i64,
    error_message=messages,
    record_errors=st.lists(st.builds(RecordError, batch_index=i32, message=messages), max_size=3),
)
topics = st.builds(
    ProducedTopic,
    name=st.text(max_size=20),
    topic_id=st.uuids(),
    partitions=st.lists(partitions, max_size=4),
)
responses = st.builds(
    ProduceResponse,
    topics=st.lists(topics, max_size=3),
    throttle_time_ms=st.integers(0, 2**31 - 1),
)


def as_kio_values(response: ProduceResponse) -> dict[str, Any]:
    return {
        "throttle_time": response.throttle_time_ms,
        "responses": [
            {
                "name": t.name,
                "topic_id": t.topic_id,
                "partition_responses": [
                    {
                        "index": p.index,
                        "error_code": p.error_code,
                        "base_offset": p.base_offset,
                        "log_append_time": p.log_append_time_ms,
                        "log_start_offset": p.log_start_offset,
                        "error_message": p.error_message,
                        "record_errors": [
                            {"batch_index": e.batch_index, "batch_index_error_message": e.message}
                            for e in p.record_errors
                        ],
                    }
                    for p in t.partitions
                ],
            }
            for t in response.topics
        ],
    }


def test_the_versions_framed_here_are_the_versions_served() -> None:
    served = SUPPORTED_APIS[ApiKey.PRODUCE]
    assert (served.min_version, served.max_version) == (PRODUCE_MIN_VERSION, PRODUCE_MAX_VERSION)


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=60, deadline=None)
@given(response=responses, correlation_id=i32)
def test_same_bytes_as_kio(version: int, response: ProduceResponse, correlation_id: int) -> None:
    ours = b"".join(response.encode_frame(correlation_id, version))
    kio_body = response_for(ApiKey.PRODUCE, version, as_kio_values(response))
    theirs = encode_response(correlation_id, ApiKey.PRODUCE, version, kio_body)
    assert ours == theirs
    got_id, decoded = decode_response(ours[4:], ApiKey.PRODUCE, version)
    assert got_id == correlation_id
    got = [
        (p.index, p.error_code, p.base_offset)
        for t in decoded.responses
        for p in t.partition_responses
    ]
    assert got == [
        (p.index, p.error_code, p.base_offset) for t in response.topics for p in t.partitions
    ]
    if version >= FIRST_WITH_ERROR_DETAILS:
        assert [p.error_message for t in decoded.responses for p in t.partition_responses] == [
            p.error_message for t in response.topics for p in t.partitions
        ]


def test_unserved_versions_are_refused() -> None:
    response = ProduceResponse(topics=[])
    with pytest.raises(EncodeError):
        response.encode_frame(1, PRODUCE_MIN_VERSION - 1)
    with pytest.raises(EncodeError):
        response.encode_frame(1, PRODUCE_MAX_VERSION + 1)
