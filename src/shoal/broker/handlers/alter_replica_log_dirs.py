"""AlterReplicaLogDirs (34): move partitions to another log directory. shoal has one, so the
only move that can succeed is to the directory a partition is already in, which changes nothing.

Kafka's answers, checked in this order for each partition:

- a path that is not one of the broker's log directories (compared exactly with their absolute
  paths: a relative or differently spelled path is not found): LOG_DIR_NOT_FOUND;
- the directory failed (read-only after an I/O error): KAFKA_STORAGE_ERROR;
- a topic or partition that does not exist: UNKNOWN_TOPIC_OR_PARTITION;
- the partition is already in that directory: no error, nothing to do.

When the request names a partition more than once, the last directory given for it counts, as
in Kafka (which reads the request into a map).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.hosted import hosted_partition
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation
from shoal.storage.volume import log_dir_path

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _DirTopic(Protocol):
    name: str
    partitions: Sequence[int]


class _Dir(Protocol):
    path: str
    topics: Sequence[_DirTopic]


class _AlterReplicaLogDirsRequest(Protocol):
    dirs: Sequence[_Dir]


async def handle_alter_replica_log_dirs(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _AlterReplicaLogDirsRequest)
    destinations: dict[tuple[str, int], str] = {}
    for directory in body.dirs:
        for topic in directory.topics:
            for index in topic.partitions:
                destinations[(str(topic.name), int(index))] = str(directory.path)
    by_topic: dict[str, list[dict[str, Any]]] = {}
    allowed = broker.authorize_cluster(ctx, AclOperation.ALTER)
    for (name, index), path in destinations.items():
        error = (
            _error(broker, name, index, path) if allowed else ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        )
        by_topic.setdefault(name, []).append({"partition_index": index, "error_code": error})
    results = [{"topic_name": name, "partitions": parts} for name, parts in by_topic.items()]
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "results": results}
    )


def _error(broker: Broker, name: str, index: int, path: str) -> ErrorCode:
    if path != log_dir_path(broker.logs.path):
        return ErrorCode.LOG_DIR_NOT_FOUND
    if broker.logs.health.failure is not None:
        return ErrorCode.KAFKA_STORAGE_ERROR
    if hosted_partition(broker, name, index) is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    return ErrorCode.NONE
