"""Requests and responses through the codec: every served API, errors, KIP-511 fallback."""

from __future__ import annotations

import datetime
import struct
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.schema.fetch.v12 import response as fetch_v12
from kio.schema.metadata.v1.request import MetadataRequest as MetadataRequestV1
from kio.schema.metadata.v12.request import MetadataRequest as MetadataRequestV12
from kio.schema.metadata.v12.request import MetadataRequestTopic
from kio.schema.metadata.v13.request import MetadataRequest as MetadataRequestV13
from kio.schema.metadata.v13.request import MetadataRequestTopic as MetadataRequestTopicV13
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.types import TopicName
from kio.serial import entity_reader
from kio.static.primitive import i16, i32, i32Timedelta, i64

from shoal.invariant import InvariantError
from shoal.protocol import (
    ApiKey,
    EncodeError,
    FrameDecoder,
    InvalidRequestError,
    InvalidResponseError,
    RequestHeader,
    UnsupportedVersionError,
    advertised_versions,
    decode_request,
    decode_response,
    encode_api_versions_fallback,
    encode_frame,
    encode_request,
    encode_response,
    encode_response_header_for,
    restrict_to,
)
from tests.protocol.kio_values import (
    case_id,
    empty_instance,
    message_class,
    message_strategy,
    served_versions,
)

CASES = [
    (key, version, kind) for key, version in served_versions() for kind in ("request", "response")
]
CASE_IDS = [case_id(*case) for case in CASES]


def round_trip(key: int, version: int, kind: str, message: Any) -> Any:
    """Encode ``message`` as a framed request or response, reassemble it, decode it."""
    if kind == "request":
        header = RequestHeader(key, version, 42, "shoal-test")
        frame = encode_request(header, message)
    else:
        frame = encode_response(42, key, version, message)
    decoder = FrameDecoder()
    decoder.feed(frame)
    body = decoder.next_frame()
    assert body is not None
    assert decoder.at_frame_boundary
    if kind == "request":
        request = decode_request(body)
        assert request.header == header
        return request.body
    correlation_id, decoded = decode_response(body, key, version)
    assert correlation_id == 42
    return decoded


@pytest.mark.parametrize(("key", "version", "kind"), CASES, ids=CASE_IDS)
def test_empty_messages_round_trip(key: int, version: int, kind: str) -> None:
    message = empty_instance(message_class(key, version, kind))
    assert round_trip(key, version, kind, message) == message


@pytest.mark.parametrize(("key", "version", "kind"), CASES, ids=CASE_IDS)
def test_arbitrary_messages_round_trip(key: int, version: int, kind: str) -> None:
    @settings(
        max_examples=5,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(message=message_strategy(message_class(key, version, kind)))
    def check(message: Any) -> None:
        assert round_trip(key, version, kind, message) == message

    check()


def produce_request(records: bytes) -> ProduceRequest:
    return ProduceRequest(
        transactional_id=None,
        acks=i16(-1),
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=30)),
        topic_data=(
            TopicProduceData(
                name=TopicName("orders"),
                partition_data=(PartitionProduceData(index=i32(0), records=records),),
            ),
        ),
    )


def test_produce_records_stay_opaque_bytes() -> None:
    records = bytes(range(256)) * 64
    frame = encode_request(RequestHeader(0, 9, 1, "p"), produce_request(records))
    decoded = decode_request(frame[4:]).body
    assert isinstance(decoded, ProduceRequest)
    got = decoded.topic_data[0].partition_data[0].records
    assert type(got) is bytes
    assert got == records


def test_non_bytes_frames_are_accepted() -> None:
    frame = encode_request(RequestHeader(0, 9, 1, "p"), produce_request(b"abc"))[4:]
    for buffer in (bytearray(frame), memoryview(bytearray(frame))):
        assert decode_request(buffer).header.correlation_id == 1


# -- unsupported keys and versions --------------------------------------------------------------


def prefix(key: int, version: int, correlation_id: int = 99) -> bytes:
    return struct.pack(">hhih", key, version, correlation_id, -1)


@pytest.mark.parametrize(
    ("key", "version", "match"),
    [
        (4, 7, "api key 4 is not served"),
        (ApiKey.METADATA, 14, "METADATA v14 is not supported; this broker serves v0 to v13"),
        (ApiKey.FETCH, 3, "FETCH v3 is not supported"),
        (ApiKey.PRODUCE, 2, "PRODUCE v2 is advertised for client compatibility but not served"),
        (ApiKey.PRODUCE, 0, "use v3 to v13"),
    ],
)
def test_unsupported_requests_close_the_connection(key: int, version: int, match: str) -> None:
    with pytest.raises(UnsupportedVersionError, match=match) as caught:
        decode_request(prefix(key, version) + b"garbage that is never read")
    assert caught.value.correlation_id == 99
    assert (caught.value.api_key, caught.value.api_version) == (key, version)
    assert caught.value.closes_connection


def test_keys_outside_the_brokers_table_are_unsupported() -> None:
    table = restrict_to([ApiKey.API_VERSIONS, ApiKey.METADATA])
    frame = encode_request(RequestHeader(0, 9, 5, "p"), produce_request(b"x"))[4:]
    assert decode_request(frame).header.api_key == ApiKey.PRODUCE
    with pytest.raises(UnsupportedVersionError, match="api key 0 is not served"):
        decode_request(frame, table)


@pytest.mark.parametrize("version", [5, 127, -1])
def test_unknown_api_versions_version_is_answerable(version: int) -> None:
    # A newer client's ApiVersions request: its header and body layout are unknown.
    frame = struct.pack(">hhi", ApiKey.API_VERSIONS, version, 1234) + b"\xff\xfe future bytes"
    with pytest.raises(UnsupportedVersionError) as caught:
        decode_request(frame)
    assert not caught.value.closes_connection
    assert caught.value.correlation_id == 1234


def test_kip_511_fallback_is_an_api_versions_v0_response() -> None:
    frame = encode_api_versions_fallback(1234)
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    (correlation_id,) = struct.unpack_from(">i", frame, 4)
    assert correlation_id == 1234
    # Response header v0: the body starts right after the correlation id, no tagged fields.
    body, used = entity_reader(ApiVersionsResponseV0)(frame, 8)
    assert used == len(frame) - 8
    assert body.error_code is KioErrorCode.unsupported_version
    listed = [(e.api_key, e.min_version, e.max_version) for e in body.api_keys]
    assert listed == [tuple(entry) for entry in advertised_versions()]
    assert (ApiKey.API_VERSIONS, 0, 4) in listed


def test_kip_511_fallback_lists_the_brokers_table() -> None:
    table = restrict_to([ApiKey.API_VERSIONS, ApiKey.PRODUCE])
    _cid, body = decode_response(encode_api_versions_fallback(1, table)[4:], 18, 0)
    assert isinstance(body, ApiVersionsResponseV0)
    assert [(e.api_key, e.min_version, e.max_version) for e in body.api_keys] == [
        (0, 0, 13),
        (18, 0, 4),
    ]


# -- malformed bodies ---------------------------------------------------------------------------

V1 = struct.pack(">hhih", ApiKey.METADATA, 1, 77, 1) + b"c"  # Metadata v1, header v1
V12 = V1[:2] + struct.pack(">h", 12) + V1[4:] + b"\x00"  # Metadata v12, header v2


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (V1, "malformed METADATA v1 request body"),
        (V1 + struct.pack(">i", 2**31 - 1), "METADATA v1"),
        (V1 + struct.pack(">i", -2), "negative array length"),
        (V1 + struct.pack(">ih", 1, -2), "negative string length"),
        (V1 + struct.pack(">ih", 1, -1), "null"),
        (V1 + struct.pack(">ih", 1, 10) + b"short", "runs past the end"),
        (V1 + struct.pack(">ih", 1, 2) + b"\xff\xfe", "UTF-8"),
        (V12 + b"\xff\xff\xff\xff\xff\xff\x01", "is longer than 5 bytes"),
        (V12 + b"\x01" + b"\x00\x00" + b"\x01\x00\x7f", "METADATA v12"),
    ],
)
def test_malformed_bodies_are_invalid_requests(frame: bytes, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem) as caught:
        decode_request(frame)
    assert caught.value.correlation_id == 77
    assert caught.value.closes_connection


def test_bytes_after_a_body_are_ignored_as_kafka_does() -> None:
    # librdkafka 2.16 sends this all-topics Metadata v13 with three bytes after the body.
    frame = bytes.fromhex("0003000d00000003000772646b61666b610000000000010000")
    request = decode_request(frame)
    assert request.header.correlation_id == 3
    assert request.body.topics is None  # type: ignore[union-attr]
    assert decode_request(V1 + struct.pack(">i", 0) + b"junk").body == MetadataRequestV1(topics=())


def test_well_formed_versions_of_those_bodies_decode() -> None:
    assert decode_request(V1 + struct.pack(">i", -1)).body == MetadataRequestV1(topics=None)
    body = decode_request(V12 + b"\x02" + bytes(16) + b"\x02t" + b"\x00" + b"\x01\x00\x00").body
    assert body == MetadataRequestV12(
        topics=(MetadataRequestTopic(topic_id=None, name=TopicName("t")),),
        allow_auto_topic_creation=True,
        include_topic_authorized_operations=False,
    )


def test_malformed_response() -> None:
    with pytest.raises(InvalidResponseError):
        decode_response(b"\x00\x00\x00\x01", ApiKey.METADATA, 12)


# -- encoding -----------------------------------------------------------------------------------


def test_response_of_the_wrong_version_is_a_bug() -> None:
    message = empty_instance(message_class(ApiKey.METADATA, 12, "response"))
    with pytest.raises(InvariantError, match="not api key 3 v11"):
        encode_response(1, ApiKey.METADATA, 11, message)


def test_value_out_of_range_is_an_encode_error() -> None:
    cls = message_class(ApiKey.HEARTBEAT, 0, "response")
    message = cls(error_code=KioErrorCode.none)
    object.__setattr__(message, "error_code", 70_000)  # what a buggy handler could build
    with pytest.raises(EncodeError, match="HeartbeatResponse"):
        encode_response(1, ApiKey.HEARTBEAT, 0, message)


def test_flexible_and_non_flexible_response_headers() -> None:
    metadata = empty_instance(message_class(ApiKey.METADATA, 12, "response"))
    assert encode_response(7, 3, 12, metadata)[4:9] == b"\x00\x00\x00\x07\x00"
    api_versions = empty_instance(message_class(ApiKey.API_VERSIONS, 4, "response"))
    # ApiVersions v4 has a flexible body but a v0 header: the body's error code follows at once.
    assert encode_response(7, 18, 4, api_versions)[4:10] == b"\x00\x00\x00\x07\x00\x00"


def test_hand_framed_fetch_response_equals_the_encoded_one() -> None:
    # What the broker does for Fetch: header and message parts around records from a segment.
    records = b"\x00" * 70 + b"RECORD BATCH BYTES"
    response = fetch_v12.FetchResponse(
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)),
        error_code=KioErrorCode.none,
        session_id=i32(0),
        responses=(
            fetch_v12.FetchableTopicResponse(
                topic=TopicName("orders"),
                partitions=(
                    fetch_v12.PartitionData(
                        partition_index=i32(0),
                        error_code=KioErrorCode.none,
                        high_watermark=i64(10),
                        last_stable_offset=i64(10),
                        log_start_offset=i64(0),
                        aborted_transactions=None,
                        preferred_read_replica=i32(-1),
                        records=records,
                    ),
                ),
            ),
        ),
    )
    whole = encode_response(9, ApiKey.FETCH, 12, response)
    body = whole[4 + 5 :]  # after the size prefix and the v1 response header
    start = body.index(records)
    parts = encode_frame(
        [
            encode_response_header_for(9, ApiKey.FETCH, 12),
            body[:start],
            memoryview(records),
            body[start + len(records) :],
        ]
    )
    assert b"".join(parts) == whole
    assert decode_response(whole[4:], ApiKey.FETCH, 12) == (9, response)


@settings(max_examples=30, deadline=None)
@given(records=st.binary(max_size=2000), correlation_id=st.integers(0, 2**31 - 1))
def test_produce_round_trip_keeps_records(records: bytes, correlation_id: int) -> None:
    message = produce_request(records)
    frame = encode_request(RequestHeader(0, 9, correlation_id, None), message)
    request = decode_request(frame[4:])
    assert request.header == RequestHeader(0, 9, correlation_id, None)
    assert request.body == message


def test_topic_ids_survive() -> None:
    topic_id = uuid.uuid4()
    message = MetadataRequestV13(
        topics=(MetadataRequestTopicV13(topic_id=topic_id, name=None),),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=True,
    )
    assert round_trip(ApiKey.METADATA, 13, "request", message) == message
