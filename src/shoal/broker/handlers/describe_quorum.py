"""DescribeQuorum (55): the KRaft quorum of the ``__cluster_metadata`` log, as
``kafka-metadata-quorum describe`` shows it.

shoal has no Raft quorum: its metadata is a file on the one node, which is in effect the only
voter and the leader since it started. It answers as a single-node KRaft cluster does:

- this node (``node.id``) is the only voter and the leader, with no observers;
- the leader epoch is 1, the epoch of the first and only election;
- the metadata log is empty, since shoal keeps no such log: high watermark and log end offset 0;
- the leader's last fetch and caught-up times are now, as Kafka reports for its leader (v1+);
- the node's directory id is the zero UUID, for "none" (v2+): shoal does not number directories;
- the node's listener is the one clients reach it on, named PLAINTEXT (v2+): shoal has no
  separate controller listener.

Kafka answers any other topic or partition than ``__cluster_metadata``-0, or more than that one,
with UNKNOWN_TOPIC_OR_PARTITION for each partition asked for.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

METADATA_TOPIC: Final = "__cluster_metadata"
METADATA_PARTITION: Final = 0
LEADER_EPOCH: Final = 1
METADATA_LOG_END_OFFSET: Final = 0
LISTENER_NAME: Final = "PLAINTEXT"
NO_DIRECTORY_ID: Final = uuid.UUID(int=0)
NOT_HOSTED: Final = "This server does not host this topic-partition."


class _QuorumPartition(Protocol):
    partition_index: int


class _QuorumTopic(Protocol):
    topic_name: str
    partitions: Sequence[_QuorumPartition]


class _DescribeQuorumRequest(Protocol):
    topics: Sequence[_QuorumTopic]


async def handle_describe_quorum(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DescribeQuorumRequest)
    asked = [
        (str(t.topic_name), [int(p.partition_index) for p in t.partitions]) for t in body.topics
    ]
    answer: dict[str, Any] = {"error_code": ErrorCode.NONE, "error_message": None}
    if not broker.authorize_cluster(ctx, AclOperation.DESCRIBE):
        denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        answer.update(error_code=denied, error_message=denied.message, topics=[], nodes=[])
    elif asked == [(METADATA_TOPIC, [METADATA_PARTITION])]:
        answer["topics"] = [{"topic_name": METADATA_TOPIC, "partitions": [_quorum(broker)]}]
        answer["nodes"] = [_node(broker)]
    else:
        answer["topics"] = [
            {"topic_name": name, "partitions": [_not_hosted(index) for index in indexes]}
            for name, indexes in asked
        ]
        answer["nodes"] = []
    return response_for(header.api_key, header.api_version, answer)


def _quorum(broker: Broker) -> dict[str, Any]:
    now_ms = broker.clock.now_ms()
    voter = {
        "replica_id": broker.config.node_id,
        "replica_directory_id": NO_DIRECTORY_ID,
        "log_end_offset": METADATA_LOG_END_OFFSET,
        "last_fetch_timestamp": now_ms,
        "last_caught_up_timestamp": now_ms,
    }
    return {
        "partition_index": METADATA_PARTITION,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "leader_id": broker.config.node_id,
        "leader_epoch": LEADER_EPOCH,
        "high_watermark": METADATA_LOG_END_OFFSET,
        "current_voters": [voter],
        "observers": [],
    }


def _node(broker: Broker) -> dict[str, Any]:
    config = broker.config
    listener = {
        "name": LISTENER_NAME,
        "host": config.advertised_host,
        "port": config.advertised_port,
    }
    return {"node_id": config.node_id, "listeners": [listener]}


def _not_hosted(index: int) -> dict[str, Any]:
    return {
        "partition_index": index,
        "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        "error_message": NOT_HOSTED,
        "leader_id": 0,
        "leader_epoch": 0,
        "high_watermark": 0,
        "current_voters": [],
        "observers": [],
    }
