"""ElectLeaders (43): elect partition leaders. On a single node every partition's only replica,
this broker, is already its leader, preferred and live, so no election is ever needed.

Kafka's answers (its controller's ``electLeaders``), for both election types (0 preferred,
1 unclean):

- a partition that exists: ELECTION_NOT_NEEDED;
- a topic or partition that does not: UNKNOWN_TOPIC_OR_PARTITION;
- a null topic list means every partition, and then partitions whose election was not needed are
  left out of the answer: each topic appears with an empty partition list;
- an election type other than 0 and 1: INVALID_REQUEST, at the top level (v1+) and for every
  partition asked for (none when the list is null).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.broker.handlers.hosted import hosted_partition, topic_exists
from shoal.coordinator.offsets_log import OFFSETS_TOPIC
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

ELECTION_TYPES: Final = {0: "PREFERRED", 1: "UNCLEAN"}


class _TopicPartitions(Protocol):
    topic: str
    partitions: Sequence[int]


class _ElectLeadersRequest(Protocol):
    """election_type (v1+) is read with getattr."""

    topic_partitions: Sequence[_TopicPartitions] | None


async def handle_elect_leaders(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _ElectLeadersRequest)
    # v0 has no election type: it always asks for the preferred leader.
    election_type = int(getattr(body, "election_type", 0))
    answer: dict[str, Any] = {"throttle_time": 0, "error_code": ErrorCode.NONE}
    asked = body.topic_partitions
    if not broker.authorize_cluster(ctx, AclOperation.ALTER):
        denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        answer["error_code"] = denied
        answer["replica_election_results"] = [
            {
                "topic": str(topic.topic),
                "partition_result": [
                    _result(int(p), denied, denied.message) for p in topic.partitions
                ],
            }
            for topic in asked or ()
        ]
    elif election_type not in ELECTION_TYPES:
        message = f"Unknown election type {election_type}"
        answer["error_code"] = ErrorCode.INVALID_REQUEST
        answer["replica_election_results"] = [
            {
                "topic": str(topic.topic),
                "partition_result": [
                    _result(int(p), ErrorCode.INVALID_REQUEST, message) for p in topic.partitions
                ],
            }
            for topic in asked or ()
        ]
    elif asked is None:
        answer["replica_election_results"] = [
            {"topic": name, "partition_result": []} for name in _every_topic(broker)
        ]
    else:
        answer["replica_election_results"] = [
            {
                "topic": str(topic.topic),
                "partition_result": [
                    _elect(broker, str(topic.topic), int(p)) for p in topic.partitions
                ],
            }
            for topic in asked
        ]
    return response_for(header.api_key, header.api_version, answer)


def _every_topic(broker: Broker) -> list[str]:
    names = sorted(topic.name for topic in broker.topics)
    if topic_exists(broker, OFFSETS_TOPIC):
        names.append(OFFSETS_TOPIC)
    return names


def _elect(broker: Broker, name: str, index: int) -> dict[str, Any]:
    if not topic_exists(broker, name):
        return _result(index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such topic as {name}")
    if hosted_partition(broker, name, index) is None:
        return _result(
            index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such partition as {name}-{index}"
        )
    code = ErrorCode.ELECTION_NOT_NEEDED
    return _result(index, code, code.message)


def _result(index: int, code: ErrorCode, message: str) -> dict[str, Any]:
    return {"partition_id": index, "error_code": code, "error_message": message}
