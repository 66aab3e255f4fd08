"""Cross-checks against kafka-python, an independent implementation of the wire format.

Requests encoded by kafka-python's protocol classes must decode to what was put in them, and
responses shoal encodes must decode in kafka-python the way a client reads them.
"""

from __future__ import annotations

import datetime
import uuid
import warnings
from types import ModuleType
from typing import Any

import pytest
from kio.schema.api_versions.v4 import response as api_versions_v4
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.schema.metadata.v12 import response as metadata_v12
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i16, i32, i32Timedelta

from shoal.protocol import (
    ApiKey,
    UnsupportedVersionError,
    advertised_versions,
    decode_request,
    encode_api_versions_fallback,
    encode_response,
)


def kafka_protocol() -> tuple[ModuleType, ModuleType]:
    # kafka-python's schema loader calls importlib.resources.read_text, deprecated since 3.11;
    # the warning is theirs, and this suite turns warnings into errors.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import kafka.protocol.metadata as metadata
        import kafka.protocol.producer as producer
    return metadata, producer


METADATA, PRODUCER = kafka_protocol()


def encoded(request: Any, correlation_id: int) -> bytes:
    """The frame body kafka-python sends for ``request`` (its size prefix removed)."""
    request.with_header(correlation_id=correlation_id, client_id="kafka-python-test")
    data = bytes(request.encode(framed=True, header=True))
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    return data[4:]


@pytest.mark.parametrize("version", range(5))
def test_api_versions_requests(version: int) -> None:
    request = METADATA.ApiVersionsRequest[version](
        client_software_name="kafka-python", client_software_version="3.0.12"
    )
    decoded = decode_request(encoded(request, 1000 + version))
    assert decoded.header.api_key == ApiKey.API_VERSIONS
    assert decoded.header.api_version == version
    assert decoded.header.correlation_id == 1000 + version
    assert decoded.header.client_id == "kafka-python-test"
    if version >= 3:
        assert decoded.body.client_software_name == "kafka-python"
        assert decoded.body.client_software_version == "3.0.12"


@pytest.mark.parametrize("version", range(14))
def test_metadata_requests(version: int) -> None:
    topic = METADATA.MetadataRequest.MetadataRequestTopic
    request = METADATA.MetadataRequest[version](
        topics=[topic(name="orders", topic_id=None), topic(name="payments", topic_id=None)],
        allow_auto_topic_creation=False,
        include_cluster_authorized_operations=False,
        include_topic_authorized_operations=True,
    )
    decoded = decode_request(encoded(request, version))
    body: Any = decoded.body
    assert (decoded.header.api_key, decoded.header.api_version) == (ApiKey.METADATA, version)
    assert [t.name for t in body.topics] == ["orders", "payments"]
    if version >= 4:
        assert body.allow_auto_topic_creation is False
    if version >= 8:
        assert body.include_topic_authorized_operations is True


@pytest.mark.parametrize("version", range(3, 14))
def test_produce_requests(version: int) -> None:
    records = b"\x00" * 61 + b"opaque record batch bytes"
    topic_data = PRODUCER.ProduceRequest.TopicProduceData
    partition = topic_data.PartitionProduceData(index=2, records=records)
    topic_id = uuid.uuid4()
    topic = (
        topic_data(topic_id=topic_id, partition_data=[partition])
        if version >= 13
        else topic_data(name="orders", partition_data=[partition])
    )
    request = PRODUCER.ProduceRequest[version](
        transactional_id="txn-1", acks=-1, timeout_ms=30_000, topic_data=[topic]
    )
    decoded = decode_request(encoded(request, 77))
    body: Any = decoded.body
    assert (decoded.header.api_key, decoded.header.api_version) == (ApiKey.PRODUCE, version)
    assert body.transactional_id == "txn-1"
    assert body.acks == -1
    assert body.timeout == datetime.timedelta(seconds=30)
    (decoded_topic,) = body.topic_data
    if version >= 13:
        assert decoded_topic.topic_id == topic_id
    else:
        assert decoded_topic.name == "orders"
    (decoded_partition,) = decoded_topic.partition_data
    assert decoded_partition.index == 2
    assert decoded_partition.records == records


@pytest.mark.parametrize("version", range(3))
def test_produce_v0_to_v2_from_a_real_encoder_is_refused(version: int) -> None:
    topic_data = PRODUCER.ProduceRequest.TopicProduceData
    partition = topic_data.PartitionProduceData(index=0, records=b"old message set")
    request = PRODUCER.ProduceRequest[version](
        acks=1, timeout_ms=1000, topic_data=[topic_data(name="t", partition_data=[partition])]
    )
    with pytest.raises(UnsupportedVersionError, match=f"PRODUCE v{version} is advertised") as e:
        decode_request(encoded(request, 5))
    assert e.value.correlation_id == 5
    assert e.value.closes_connection


def test_kafka_python_reads_the_kip_511_fallback_as_a_client_does() -> None:
    # A client that sent ApiVersions v4 reads the answer as v4; on a non-zero error code it
    # re-reads the body as v0 (the KIP-511 rule). kafka-python implements exactly that.
    frame = encode_api_versions_fallback(31)
    response = METADATA.ApiVersionsResponse.decode(frame[4:], version=4, header=True)
    assert response.header.correlation_id == 31
    assert response.error_code == 35
    listed = [(k.api_key, k.min_version, k.max_version) for k in response.api_keys]
    assert listed == [tuple(entry) for entry in advertised_versions()]


def test_kafka_python_reads_an_api_versions_v4_response() -> None:
    response = api_versions_v4.ApiVersionsResponse(
        error_code=KioErrorCode.none,
        api_keys=tuple(
            api_versions_v4.ApiVersion(
                api_key=i16(entry.api_key),
                min_version=i16(entry.min_version),
                max_version=i16(entry.max_version),
            )
            for entry in advertised_versions()
        ),
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)),
    )
    frame = encode_response(8, ApiKey.API_VERSIONS, 4, response)
    decoded = METADATA.ApiVersionsResponse.decode(frame[4:], version=4, header=True)
    assert decoded.header.correlation_id == 8
    assert decoded.error_code == 0
    assert len(decoded.api_keys) == len(advertised_versions())


def test_kafka_python_reads_a_metadata_v12_response() -> None:
    topic_id = uuid.uuid4()
    response = metadata_v12.MetadataResponse(
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)),
        brokers=(
            metadata_v12.MetadataResponseBroker(
                node_id=BrokerId(1), host="localhost", port=i32(9092), rack=None
            ),
        ),
        cluster_id="shoal-cluster",
        controller_id=BrokerId(1),
        topics=(
            metadata_v12.MetadataResponseTopic(
                error_code=KioErrorCode.none,
                name=TopicName("orders"),
                topic_id=topic_id,
                is_internal=False,
                partitions=(
                    metadata_v12.MetadataResponsePartition(
                        error_code=KioErrorCode.none,
                        partition_index=i32(0),
                        leader_id=BrokerId(1),
                        leader_epoch=i32(0),
                        replica_nodes=(BrokerId(1),),
                        isr_nodes=(BrokerId(1),),
                        offline_replicas=(),
                    ),
                ),
                topic_authorized_operations=i32(-(2**31)),
            ),
        ),
    )
    frame = encode_response(3, ApiKey.METADATA, 12, response)
    decoded = METADATA.MetadataResponse.decode(frame[4:], version=12, header=True)
    assert decoded.header.correlation_id == 3
    assert decoded.cluster_id == "shoal-cluster"
    (broker,) = decoded.brokers
    assert (broker.node_id, broker.host, broker.port) == (1, "localhost", 9092)
    (topic,) = decoded.topics
    assert (topic.name, topic.topic_id) == ("orders", topic_id)
    assert [p.partition_index for p in topic.partitions] == [0]
