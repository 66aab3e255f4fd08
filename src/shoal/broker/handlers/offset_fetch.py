"""OffsetFetch (9), v1-v10: committed offsets of one group (v1-v7) or several (v8+).

A partition without a committed offset answers offset -1 with no error; a null topic list
(v2+) means every partition the group has committed. require_stable (v7+) asks to wait for
pending transactional commits: shoal has no transactions yet, so nothing is ever pending.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.coordinator.offsets_log import TopicPartitionKey
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

TOPIC_ID_MIN_VERSION: Final = 10
"""OffsetFetch v10 names topics by id, in the request and the response."""


class _RequestedTopic(Protocol):
    """Named by name (v1-v9) or by topic_id (v10+): both are read with getattr."""

    partition_indexes: Sequence[int]


class _Group(Protocol):
    group_id: str
    topics: Sequence[_RequestedTopic] | None


class _OffsetFetchRequest(Protocol):
    """One group (v1-v7: group_id, topics) or several (v8+: groups), each narrowed where the
    version has it."""


class _BatchedFetch(Protocol):
    groups: Sequence[_Group]


async def handle_offset_fetch(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _OffsetFetchRequest)
    by_id = header.api_version >= TOPIC_ID_MIN_VERSION
    if hasattr(body, "groups"):
        groups = [
            {
                "group_id": g.group_id,
                "error_code": ErrorCode.NONE,
                "topics": _topics(broker, g.group_id, g.topics, by_id=by_id),
            }
            for g in request_body(request.body, _BatchedFetch).groups
        ]
        values: dict[str, Any] = {"throttle_time": 0, "groups": groups}
    else:
        single = request_body(request.body, _Group)
        values = {
            "throttle_time": 0,
            "error_code": ErrorCode.NONE,
            "topics": _topics(broker, single.group_id, single.topics, by_id=False),
        }
    return response_for(header.api_key, header.api_version, values)


def _topics(
    broker: Broker, group_id: str, requested: Sequence[_RequestedTopic] | None, *, by_id: bool
) -> list[dict[str, Any]]:
    wanted: list[TopicPartitionKey] | None = None
    unknown_ids: list[tuple[uuid.UUID, list[int]]] = []
    if requested is not None:
        wanted = []
        for entry in requested:
            indexes = [int(i) for i in entry.partition_indexes]
            topic_id: uuid.UUID | None = getattr(entry, "topic_id", None)
            if topic_id is not None:
                topic = broker.topic_by_id(topic_id)
                if topic is None:
                    unknown_ids.append((topic_id, indexes))
                    continue
                name = topic.name
            else:
                name = getattr(entry, "name", "")
            wanted.extend((name, i) for i in indexes)
    found = broker.groups.fetch_offsets(group_id, wanted)
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
