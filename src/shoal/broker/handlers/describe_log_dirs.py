"""DescribeLogDirs (35): the one data directory, the size of each partition in it, and its volume.

Kafka's answer for a broker with one log directory, whose replicas never lag: every partition
has offset lag 0 (its log end offset is its high watermark) and none is a "future" replica
(those exist only while AlterReplicaLogDirs moves a partition between directories). A null topic
list means every partition; otherwise only the partitions asked for that exist are listed, and a
topic with none of them is left out. v4+ adds the volume's total and usable bytes, v5 whether the
directory is cordoned (KIP-1066; shoal never cordons its only directory).

A directory that failed (a failed fsync made it read-only) is reported with KAFKA_STORAGE_ERROR
and no partitions, as Kafka reports an offline log directory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.hosted import hosted_partition
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation
from shoal.storage.volume import log_dir_path, volume_space

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

log = logging.getLogger(__name__)


class _DescribableTopic(Protocol):
    topic: str
    partitions: Sequence[int]


class _DescribeLogDirsRequest(Protocol):
    topics: Sequence[_DescribableTopic] | None


async def handle_describe_log_dirs(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DescribeLogDirsRequest)
    wanted: set[tuple[str, int]] | None = None
    if body.topics is not None:
        wanted = {(str(t.topic), int(p)) for t in body.topics for p in t.partitions}
    if not broker.authorize_cluster(ctx, AclOperation.DESCRIBE):
        return response_for(
            header.api_key,
            header.api_version,
            {
                "throttle_time": 0,
                "error_code": ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                "results": [],
            },
        )
    result = await _describe(broker, wanted)
    return response_for(
        header.api_key,
        header.api_version,
        {"throttle_time": 0, "error_code": ErrorCode.NONE, "results": [result]},
    )


async def _describe(broker: Broker, wanted: set[tuple[str, int]] | None) -> dict[str, Any]:
    if broker.logs.health.failure is not None:
        return _offline(broker, broker.logs.health.failure)
    try:
        # statvfs is a system call on the data directory: off the event loop like other I/O.
        space = await asyncio.to_thread(volume_space, broker.logs.path)
    except OSError as exc:
        return _offline(broker, str(exc))
    partitions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tp, plog in sorted(
        broker.logs.partitions().items(), key=lambda item: (item[0].topic, item[0].partition)
    ):
        if wanted is not None and (tp.topic, tp.partition) not in wanted:
            continue
        if hosted_partition(broker, tp.topic, tp.partition) is not plog:
            continue  # a log left past the topic's partition count by an interrupted operation
        partitions[tp.topic].append(
            {
                "partition_index": tp.partition,
                "partition_size": plog.size_bytes,
                "offset_lag": 0,
                "is_future_key": False,
            }
        )
    return {
        "error_code": ErrorCode.NONE,
        "log_dir": space.path,
        "topics": [{"name": name, "partitions": parts} for name, parts in partitions.items()],
        "total_bytes": space.total_bytes,
        "usable_bytes": space.usable_bytes,
        "is_cordoned": False,
    }


def _offline(broker: Broker, reason: str) -> dict[str, Any]:
    log.warning(
        "log directory %s reported offline to DescribeLogDirs: %s", broker.logs.path, reason
    )
    return {
        "error_code": ErrorCode.KAFKA_STORAGE_ERROR,
        "log_dir": log_dir_path(broker.logs.path),
        "topics": [],
    }
