"""Fetch, ListOffsets, Metadata and FindCoordinator edge cases on the wire: the answers Kafka
gives to requests real clients can send (and some they should not)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from shoal.broker.handlers.fetch import FETCH_MAX_BYTES
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ErrorCode
from shoal.records import SimpleRecord, build_batch, split_batches
from tests.server.support import Arena
from tests.server.wire import WireClient, batch_of, fetch_values, record_values
from tests.support.broker import create_topic

LATEST, EARLIEST, MAX_TIMESTAMP = -1, -2, -3


def list_offsets(client: WireClient, topic: str, partition: int, timestamp: int) -> Any:
    response = client.request(
        2,
        7,
        {
            "replica_id": -1,
            "isolation_level": 0,
            "topics": [
                {
                    "name": topic,
                    "partitions": [
                        {
                            "partition_index": partition,
                            "current_leader_epoch": -1,
                            "timestamp": timestamp,
                        }
                    ],
                }
            ],
        },
    )
    return response.topics[0].partitions[0]


def produce_timed(client: WireClient, topic: str, times_ms: list[int]) -> None:
    records = [SimpleRecord(key=None, value=str(t).encode(), timestamp=t) for t in times_ms]
    assert client.produce(topic, 0, build_batch(records)).error_code == ErrorCode.NONE


def test_fetch_errors(arena: Arena) -> None:
    with WireClient(arena.bootstrap) as client:
        client.metadata(["fetch-errors"])
        client.produce("fetch-errors", 0, batch_of([b"a", b"b"]))
        past_end = client.fetch("fetch-errors", 0, 3)
        negative = client.fetch("fetch-errors", 0, -1)
        at_end = client.fetch("fetch-errors", 0, 2)
        unknown = client.fetch("no-such-topic", 0, 0)
        no_partition = client.fetch("fetch-errors", 5, 0)
        by_unknown_id = client.request(1, 13, fetch_values(None, 0, topic_id=uuid.uuid4()))
    assert ErrorCode(past_end.error_code) == ErrorCode.OFFSET_OUT_OF_RANGE
    assert ErrorCode(negative.error_code) == ErrorCode.OFFSET_OUT_OF_RANGE
    assert (at_end.error_code, at_end.high_watermark, record_values(at_end.records)) == (0, 2, [])
    assert ErrorCode(unknown.error_code) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert ErrorCode(no_partition.error_code) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    partition = by_unknown_id.responses[0].partitions[0]
    assert ErrorCode(partition.error_code) == ErrorCode.UNKNOWN_TOPIC_ID


def test_fetch_by_topic_id(arena: Arena) -> None:
    """Fetch v13+ names topics by the id Metadata gave (librdkafka does this when it can)."""
    with WireClient(arena.bootstrap) as client:
        topic_id = client.metadata(["by-id"]).topics[0].topic_id
        client.produce("by-id", 0, batch_of([b"found by id"]))
        response = client.request(1, 13, fetch_values(None, 0, topic_id=topic_id))
    assert topic_id != uuid.UUID(int=0)
    assert response.responses[0].topic_id == topic_id
    assert record_values(response.responses[0].partitions[0].records) == [b"found by id"]


def test_parked_fetch_wakes_on_produce(shoal_broker: EmbeddedBroker) -> None:
    """A Fetch waiting for min_bytes returns as soon as a producer appends, with the data. (The
    wait is 25 s; had it not woken, it would come back empty.)"""
    bootstrap = shoal_broker.bootstrap_servers
    with WireClient(bootstrap) as consumer, WireClient(bootstrap) as producer:
        consumer.metadata(["wake"])
        waiting = consumer.send(1, 11, fetch_values("wake", 0, max_wait_ms=25_000, min_bytes=1))
        producer.produce("wake", 0, batch_of([b"wake up"]))
        response = consumer.receive(1, 11, waiting)
    assert record_values(response.responses[0].partitions[0].records) == [b"wake up"]


def test_fetch_is_capped_at_fetch_max_bytes(shoal_broker: EmbeddedBroker) -> None:
    """A client may ask for 2 GiB in one Fetch; the broker answers at most fetch.max.bytes."""
    value = b"v" * (1024 * 1024 - 100)
    batches = FETCH_MAX_BYTES // len(value) + 3
    with WireClient(shoal_broker.bootstrap_servers) as client:
        client.metadata(["capped"])
        for _ in range(batches):
            assert client.produce("capped", 0, batch_of([value])).error_code == ErrorCode.NONE
        fetched = client.fetch("capped", 0, 0, max_bytes=2**31 - 1)
    size = len(fetched.records)
    assert FETCH_MAX_BYTES - 2 * len(value) < size <= FETCH_MAX_BYTES
    assert len(split_batches(fetched.records)) < batches


def test_list_offsets(arena: Arena) -> None:
    base = int(time.time() * 1000) - 60_000
    with WireClient(arena.bootstrap) as client:
        client.metadata(["offsets"])
        empty_latest = list_offsets(client, "offsets", 0, LATEST)
        empty_max = list_offsets(client, "offsets", 0, MAX_TIMESTAMP)
        produce_timed(client, "offsets", [base, base + 10, base + 20])
        produce_timed(client, "offsets", [base + 30, base + 50, base + 40])
        earliest = list_offsets(client, "offsets", 0, EARLIEST)
        latest = list_offsets(client, "offsets", 0, LATEST)
        inside = list_offsets(client, "offsets", 0, base + 15)
        exact = list_offsets(client, "offsets", 0, base + 30)
        after_all = list_offsets(client, "offsets", 0, base + 51)
        max_ts = list_offsets(client, "offsets", 0, MAX_TIMESTAMP)
        unknown = list_offsets(client, "offsets", 9, LATEST)
    assert (empty_latest.error_code, empty_latest.offset) == (0, 0)
    assert (empty_max.error_code, empty_max.offset) == (0, -1)
    assert (earliest.offset, latest.offset) == (0, 6)
    assert (inside.offset, inside.timestamp) == (2, base + 20)
    assert (exact.offset, exact.timestamp) == (3, base + 30)
    assert (after_all.error_code, after_all.offset) == (0, -1)
    assert (max_ts.offset, max_ts.timestamp) == (4, base + 50)
    assert ErrorCode(unknown.error_code) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_metadata(arena: Arena) -> None:
    with WireClient(arena.bootstrap) as client:
        created = client.metadata(["meta-a"]).topics[0]
        not_created = client.metadata(["meta-never"], auto_create=False).topics[0]
        invalid = client.metadata(["bad/name"]).topics[0]
        every = client.metadata(None)
        by_unknown_id = client.request(
            3, 12, {"topics": [{"name": None, "topic_id": uuid.uuid4()}]}
        ).topics[0]
        by_id = client.request(3, 12, {"topics": [{"name": None, "topic_id": created.topic_id}]})
        # v10 and v11 carry topic ids but cannot answer a null name: Kafka says INVALID_REQUEST.
        null_name_v10 = client.request(3, 10, {"topics": [{"name": None}]}).topics[0]
    assert (created.error_code, len(created.partitions)) == (0, 1)
    assert ErrorCode(not_created.error_code) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert ErrorCode(invalid.error_code) == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert "meta-a" in {t.name for t in every.topics}
    assert "meta-never" not in {t.name for t in every.topics}
    assert ErrorCode(by_unknown_id.error_code) == ErrorCode.UNKNOWN_TOPIC_ID
    assert by_id.topics[0].name == "meta-a"
    assert ErrorCode(null_name_v10.error_code) == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("version", range(7))
def test_find_coordinator_answers_every_key(arena: Arena, version: int) -> None:
    """Each group key (one, or a batch from v4) gets this broker, or COORDINATOR_NOT_AVAILABLE
    (retriable) while groups are not served."""
    values = {"key": "group-a", "key_type": 0, "coordinator_keys": ["group-a", "group-b"]}
    with WireClient(arena.bootstrap) as client:
        response = client.request(10, version, values)
    if version >= 4:
        assert [c.key for c in response.coordinators] == ["group-a", "group-b"]
        answers = list(response.coordinators)
    else:
        answers = [response]
    host, port = arena.bootstrap.rsplit(":", 1)
    for answer in answers:
        code = ErrorCode(answer.error_code)
        assert code in (ErrorCode.NONE, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if code == ErrorCode.NONE:
            assert (answer.node_id, answer.host, answer.port) == (1, host, int(port))


def test_create_topic_helper_makes_partitions(arena: Arena) -> None:
    create_topic(arena.broker, "helper-made", 6)
    with WireClient(arena.bootstrap) as client:
        topic = client.metadata(["helper-made"], auto_create=False).topics[0]
    assert (topic.error_code, len(topic.partitions)) == (0, 6)
