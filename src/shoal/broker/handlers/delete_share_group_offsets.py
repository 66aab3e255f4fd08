"""DeleteShareGroupOffsets (92), v0: see describe_share_group_offsets for the family."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.share_offsets_common import busy
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext
    from shoal.broker.topics import Topic
    from shoal.storage import PartitionLog


class _DeleteTopic(Protocol):
    topic_name: str


class _DeleteRequest(Protocol):
    group_id: str
    topics: Sequence[_DeleteTopic]


@dataclass
class _Target:
    """One topic of the request: its partitions to forget, or why not."""

    name: str
    topic: Topic | None
    error: ErrorCode
    plogs: list[tuple[str, int, PartitionLog]]

    async def response(self, writes: list[asyncio.Future[None] | None]) -> dict[str, Any]:
        error, message = self.error, None
        outcomes = await asyncio.gather(
            *(w for w in writes if w is not None), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, StorageError):
                error, message = ErrorCode(outcome.kafka_error_code), str(outcome)
                break
            if isinstance(outcome, BaseException):
                raise outcome  # not a disk failure: a programming error
        return {
            "topic_name": self.name,
            "topic_id": self.topic.topic_id if self.topic else None,
            "error_code": error,
            "error_message": message,
        }


def _target(broker: Broker, ctx: RequestContext, name: str) -> _Target:
    topic = broker.topics.get(name)
    if not broker.authorize(ctx, AclOperation.READ, ResourceType.TOPIC, name):
        return _Target(name, topic, ErrorCode.TOPIC_AUTHORIZATION_FAILED, [])
    if topic is None:
        return _Target(name, None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, [])
    plogs = []
    for index in range(topic.partitions):
        plog = broker.partition(name, index)
        if plog is not None:
            plogs.append((name, index, plog))
    return _Target(name, topic, ErrorCode.NONE, plogs)


async def handle_delete_share_group_offsets(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DeleteRequest)

    def answer(
        error: ErrorCode, message: str | None, responses: list[dict[str, Any]]
    ) -> ResponseBody:
        values = {
            "throttle_time": 0,
            "error_code": error,
            "error_message": message,
            "responses": responses,
        }
        return response_for(header.api_key, header.api_version, values)

    group_id = body.group_id
    if not broker.authorize(ctx, AclOperation.DELETE, ResourceType.GROUP, group_id):
        return answer(ErrorCode.GROUP_AUTHORIZATION_FAILED, None, [])
    broker.share_groups.expire(group_id)
    if group_id not in broker.share_groups.groups:
        return answer(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found.", [])
    if busy(broker, group_id):
        return answer(ErrorCode.NON_EMPTY_GROUP, "The group is not empty.", [])
    # Which partitions have state on disk is read off the loop first; then, with no await in
    # between, the group is checked again (a member may have joined meanwhile) and every
    # partition's state goes at once: no member can fetch half-way through the request.
    targets = [_target(broker, ctx, entry.topic_name) for entry in body.topics]
    on_disk = await broker.share_groups.with_state(
        group_id, [p for target in targets for p in target.plogs]
    )
    if group_id not in broker.share_groups.groups:
        return answer(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found.", [])
    if busy(broker, group_id):
        return answer(ErrorCode.NON_EMPTY_GROUP, "The group is not empty.", [])
    writes = [
        [
            broker.share_groups.forget(group_id, name, index, plog, (name, index) in on_disk)
            for name, index, plog in target.plogs
        ]
        for target in targets
    ]
    responses = [
        await target.response(topic_writes)
        for target, topic_writes in zip(targets, writes, strict=True)
    ]
    return answer(ErrorCode.NONE, None, responses)
