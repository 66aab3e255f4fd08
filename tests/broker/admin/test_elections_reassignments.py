"""ElectLeaders, ListPartitionReassignments and AlterPartitionReassignments through the raw
protocol: on one node no election is needed, no reassignment is ever in progress, and the only
reassignment accepted keeps a partition where it is."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.broker.admin.support import partition_count, unique
from tests.server.wire import WireClient
from tests.support.broker import create_topic

pytestmark = pytest.mark.integration


def request(broker: EmbeddedBroker, api_key: int, version: int, values: dict[str, Any]) -> Any:
    with WireClient(broker.bootstrap_servers) as client:
        return client.request(api_key, version, values)


def elect(
    broker: EmbeddedBroker, topics: list[tuple[str, list[int]]] | None, *, kind: int = 0,
    version: int = 2,
) -> Any:  # fmt: skip
    asked = None if topics is None else [{"topic": t, "partitions": ps} for t, ps in topics]
    return request(
        broker,
        ApiKey.ELECT_LEADERS,
        version,
        {"election_type": kind, "topic_partitions": asked, "timeout": 5000},
    )


def results(response: Any) -> list[tuple[str, int, int, str | None]]:
    return [
        (r.topic, p.partition_id, p.error_code, p.error_message)
        for r in response.replica_election_results
        for p in r.partition_result
    ]


@pytest.mark.parametrize("kind", [0, 1], ids=["preferred", "unclean"])
def test_election_is_never_needed(shoal_broker: EmbeddedBroker, kind: int) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 2)
    response = elect(shoal_broker, [(topic, [0, 1, 2]), ("no-such-topic", [0])], kind=kind)
    assert response.error_code == ErrorCode.NONE
    not_needed = "Leader election not needed for topic partition."
    assert results(response) == [
        (topic, 0, ErrorCode.ELECTION_NOT_NEEDED, not_needed),
        (topic, 1, ErrorCode.ELECTION_NOT_NEEDED, not_needed),
        (topic, 2, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such partition as {topic}-2"),
        (
            "no-such-topic",
            0,
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            "No such topic as no-such-topic",
        ),
    ]


def test_election_of_every_partition_lists_each_topic_without_partitions(
    shoal_broker: EmbeddedBroker,
) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 3)
    response = elect(shoal_broker, None)
    assert response.error_code == ErrorCode.NONE
    assert topic in [r.topic for r in response.replica_election_results]
    assert results(response) == []


def test_election_v0_has_no_type_and_asks_for_the_preferred_leader(
    shoal_broker: EmbeddedBroker,
) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 1)
    response = elect(shoal_broker, [(topic, [0])], version=0)
    assert [code for _t, _p, code, _m in results(response)] == [ErrorCode.ELECTION_NOT_NEEDED]


@pytest.mark.parametrize("asked", [[("t", [0, 1])], None], ids=["listed", "all"])
def test_unknown_election_type_is_invalid_request(
    shoal_broker: EmbeddedBroker, asked: list[tuple[str, list[int]]] | None
) -> None:
    response = elect(shoal_broker, asked, kind=2)
    assert response.error_code == ErrorCode.INVALID_REQUEST
    expected = [] if asked is None else [
        ("t", p, ErrorCode.INVALID_REQUEST, "Unknown election type 2") for p in (0, 1)
    ]  # fmt: skip
    assert results(response) == expected


@pytest.mark.parametrize("topics", [None, [{"name": "x", "partition_indexes": [0]}]])
def test_no_reassignment_is_ever_in_progress(
    shoal_broker: EmbeddedBroker, topics: list[dict[str, Any]] | None
) -> None:
    response = request(
        shoal_broker, ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, {"timeout": 5000, "topics": topics}
    )
    assert (response.error_code, response.error_message, list(response.topics)) == (0, None, [])


def reassign(
    broker: EmbeddedBroker, topic: str, moves: list[tuple[int, list[int] | None]], version: int = 1
) -> list[tuple[int, int, str | None]]:
    response = request(
        broker,
        ApiKey.ALTER_PARTITION_REASSIGNMENTS,
        version,
        {
            "timeout": 5000,
            "allow_replication_factor_change": False,
            "topics": [
                {
                    "name": topic,
                    "partitions": [{"partition_index": p, "replicas": r} for p, r in moves],
                }
            ],
        },
    )
    assert response.error_code == ErrorCode.NONE
    (answer,) = response.responses
    return [(p.partition_index, p.error_code, p.error_message) for p in answer.partitions]


@pytest.mark.parametrize("version", [0, 1])
def test_reassignment_to_this_node_is_a_no_op(shoal_broker: EmbeddedBroker, version: int) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 2)
    assert reassign(shoal_broker, topic, [(0, [1]), (1, [1])], version) == [
        (0, ErrorCode.NONE, None),
        (1, ErrorCode.NONE, None),
    ]
    assert partition_count(shoal_broker, topic) == 2


@pytest.mark.parametrize(
    ("replicas", "message"),
    [
        ([], "The manual partition assignment includes an empty replica list."),
        ([2], "includes broker 2, but no such broker is registered"),
        ([1, 2], "includes broker 2, but no such broker is registered"),
        ([-1, 1], "includes broker -1, but no such broker is registered"),
        ([1, 1], "The manual partition assignment includes the broker 1 more than once."),
        ([3, 3], "includes broker 3, but no such broker is registered"),
    ],
    ids=repr,
)
def test_reassignment_elsewhere_is_an_invalid_replica_assignment(
    shoal_broker: EmbeddedBroker, replicas: list[int], message: str
) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 1)
    ((index, code, text),) = reassign(shoal_broker, topic, [(0, replicas)])
    assert (index, code) == (0, ErrorCode.INVALID_REPLICA_ASSIGNMENT)
    assert text is not None and message in text


def test_cancelling_is_no_reassignment_in_progress(shoal_broker: EmbeddedBroker) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 1)
    assert reassign(shoal_broker, topic, [(0, None)]) == [
        (0, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None)
    ]


def test_reassignment_of_unknown_topic_or_partition(shoal_broker: EmbeddedBroker) -> None:
    topic = unique()
    create_topic(shoal_broker, topic, 1)
    assert reassign(shoal_broker, topic, [(4, [1])]) == [
        (4, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find partition {topic}:4.")
    ]
    assert (
        reassign(shoal_broker, "no-such-topic", [(0, [1]), (0, None)])
        == [
            (
                0,
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                "Unable to find a topic named no-such-topic.",
            ),
        ]
        * 2
    )
