"""DescribeLogDirs and AlterReplicaLogDirs through the raw protocol: the one data directory, the
partitions in it and their sizes, the volume's space, and the answers to moves that cannot be
made (another directory, unknown partitions, a failed directory)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.broker.admin.support import on_broker, produce, unique
from tests.server.wire import WireClient
from tests.support.broker import create_topic

pytestmark = pytest.mark.integration


def request(broker: EmbeddedBroker, api_key: int, version: int, values: dict[str, Any]) -> Any:
    with WireClient(broker.bootstrap_servers) as client:
        return client.request(api_key, version, values)


def describe(broker: EmbeddedBroker, topics: list[dict[str, Any]] | None, version: int = 4) -> Any:
    response = request(broker, ApiKey.DESCRIBE_LOG_DIRS, version, {"topics": topics})
    (result,) = response.results
    return result


def sizes(result: Any) -> dict[tuple[str, int], tuple[int, int, bool]]:
    return {
        (t.name, p.partition_index): (p.partition_size, p.offset_lag, p.is_future_key)
        for t in result.topics
        for p in t.partitions
    }


def data_dir(broker: EmbeddedBroker) -> str:
    path: str = on_broker(broker, lambda b: os.path.abspath(b.logs.path))
    return path


def alter(broker: EmbeddedBroker, path: str, topic: str, partitions: list[int]) -> dict[int, int]:
    response = request(
        broker,
        ApiKey.ALTER_REPLICA_LOG_DIRS,
        2,
        {"dirs": [{"path": path, "topics": [{"name": topic, "partitions": partitions}]}]},
    )
    (result,) = response.results
    assert result.topic_name == topic
    return {p.partition_index: p.error_code for p in result.partitions}


def test_describe_lists_each_partition_with_its_size(shoal_broker: EmbeddedBroker) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 2)
    assert produce(shoal_broker, topic, [b"x" * 100] * 3) == [None] * 3
    result = describe(shoal_broker, None)
    assert result.error_code == ErrorCode.NONE
    assert result.log_dir == data_dir(shoal_broker)
    listed = sizes(result)
    size0, lag0, future0 = listed[(topic, 0)]
    assert size0 > 300 and (lag0, future0) == (0, False)
    assert listed[(topic, 1)] == (0, 0, False)
    stats = os.statvfs(data_dir(shoal_broker))
    assert result.total_bytes == stats.f_blocks * stats.f_frsize
    assert 0 < result.usable_bytes <= result.total_bytes


def test_describe_only_the_partitions_asked_for_that_exist(shoal_broker: EmbeddedBroker) -> None:
    topic, other = unique(), unique()
    create_topic(shoal_broker, topic, 3)
    create_topic(shoal_broker, other, 1)
    asked = [
        {"topic": topic, "partitions": [0, 2, 7]},
        {"topic": "no-such-topic", "partitions": [0]},
    ]
    result = describe(shoal_broker, asked, version=5)
    assert set(sizes(result)) == {(topic, 0), (topic, 2)}
    assert result.is_cordoned is False
    empty = describe(shoal_broker, [], version=1)
    assert (empty.error_code, list(empty.topics)) == (ErrorCode.NONE, [])


def test_describe_reports_a_failed_directory(shoal_broker: EmbeddedBroker) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 1)
    on_broker(shoal_broker, lambda b: b.logs.health.fail("injected by the test"))
    result = describe(shoal_broker, None)
    assert result.error_code == ErrorCode.KAFKA_STORAGE_ERROR
    assert list(result.topics) == []
    assert alter(shoal_broker, data_dir(shoal_broker), topic, [0]) == {
        0: ErrorCode.KAFKA_STORAGE_ERROR
    }


def test_alter_to_the_same_directory_changes_nothing(shoal_broker: EmbeddedBroker) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 2)
    before = sizes(describe(shoal_broker, None))
    assert alter(shoal_broker, data_dir(shoal_broker), topic, [0, 1]) == {
        0: ErrorCode.NONE,
        1: ErrorCode.NONE,
    }
    assert sizes(describe(shoal_broker, None)) == before


@pytest.mark.parametrize(
    "path", ["/no/such/log/dir", "relative-dir", "{data}/", "{data}/.."], ids=repr
)
def test_alter_to_another_directory_is_log_dir_not_found(
    shoal_broker: EmbeddedBroker, path: str
) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 1)
    target = path.format(data=data_dir(shoal_broker))
    assert alter(shoal_broker, target, topic, [0]) == {0: ErrorCode.LOG_DIR_NOT_FOUND}
    # Checked before the partition: an unknown topic gets the same answer.
    assert alter(shoal_broker, target, "no-such-topic", [0]) == {0: ErrorCode.LOG_DIR_NOT_FOUND}


def test_alter_unknown_topic_or_partition(shoal_broker: EmbeddedBroker) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 1)
    here = data_dir(shoal_broker)
    assert alter(shoal_broker, here, topic, [0, 3, -1]) == {
        0: ErrorCode.NONE,
        3: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        -1: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    }
    assert alter(shoal_broker, here, "no-such-topic", [0]) == {
        0: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    }
