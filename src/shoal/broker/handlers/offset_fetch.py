"""OffsetFetch (9), v1-v10: committed offsets of one group (v1-v7) or several (v8+).

A partition without a committed offset answers offset -1 with no error; a null topic list
(v2+) means every partition the group has committed. require_stable (v7+) asks to wait for
pending transactional commits: shoal has no transactions yet, so nothing is ever pending.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Final, cast

from shoal.coordinator.offsets_log import TopicPartitionKey
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

TOPIC_ID_MIN_VERSION: Final = 10
"""OffsetFetch v10 names topics by id, in the request and the response."""


async def handle_offset_fetch(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    # Version-agnostic: every version of the message has the fields read here.
    header, body = request.header, cast(Any, request.body)
    by_id = header.api_version >= TOPIC_ID_MIN_VERSION
    if hasattr(body, "groups"):
        groups = [
            {
                "group_id": g.group_id,
                "error_code": ErrorCode.NONE,
                "topics": _topics(broker, g.group_id, g.topics, by_id=by_id),
            }
            for g in body.groups
        ]
        values: dict[str, Any] = {"throttle_time": 0, "groups": groups}
    else:
        values = {
            "throttle_time": 0,
            "error_code": ErrorCode.NONE,
            "topics": _topics(broker, body.group_id, body.topics, by_id=False),
        }
    return response_for(header.api_key, header.api_version, values)


def _topics(broker: Broker, group_id: str, requested: Any, *, by_id: bool) -> list[dict[str, Any]]:
    coordinator = broker.groups.coordinator
    wanted: list[TopicPartitionKey] | None = None
    unknown_ids: list[tuple[uuid.UUID, list[int]]] = []
    if requested is not None:
        wanted = []
        for entry in requested:
            indexes = [int(i) for i in entry.partition_indexes]
            if hasattr(entry, "topic_id"):
                topic = broker.topic_by_id(entry.topic_id)
                if topic is None:
                    unknown_ids.append((entry.topic_id, indexes))
                    continue
                name = topic.name
            else:
                name = entry.name
            wanted.extend((name, i) for i in indexes)
    found = coordinator.fetch_offsets(group_id, wanted)
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (name, index), committed in found.items():
        by_topic.setdefault(name, []).append(
            {
                "partition_index": index,
                "committed_offset": committed.offset if committed else -1,
                "committed_leader_epoch": committed.leader_epoch if committed else -1,
                "metadata": committed.metadata if committed else "",
                "error_code": ErrorCode.NONE,
            }
        )
    topics = []
    for name, partitions in by_topic.items():
        out: dict[str, Any] = {"name": name, "partitions": partitions, "topic_id": None}
        if by_id:
            topic = broker.topics.get(name)
            if topic is None:
                continue  # committed for a topic deleted since: it has no id to name it by
            out["topic_id"] = topic.topic_id
        topics.append(out)
    for topic_id, indexes in unknown_ids:
        topics.append(
            {
                "topic_id": topic_id,
                "partitions": [
                    {
                        "partition_index": i,
                        "committed_offset": -1,
                        "metadata": "",
                        "error_code": ErrorCode.UNKNOWN_TOPIC_ID,
                    }
                    for i in indexes
                ],
            }
        )
    return topics
