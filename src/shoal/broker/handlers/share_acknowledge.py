"""ShareAcknowledge (79), v1-v2: acknowledge records of a share session without fetching.

The session epoch is checked as for ShareFetch (epoch 0 cannot acknowledge: there is no
session yet; -1 acknowledges and closes the session); each partition's batches are applied
all or none and answered with the partition's error.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.handlers.group_common import may_use_group
from shoal.broker.handlers.share_common import (
    AckOutcome,
    acknowledge,
    load_states,
    settled,
    topic_name,
)
from shoal.broker.leader_epochs import epoch_of
from shoal.broker.share_groups import FINAL_EPOCH, INITIAL_EPOCH, ShareSessionError
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _AckBatch(Protocol):
    first_offset: int
    last_offset: int
    acknowledge_types: Sequence[int]


class _AckPartition(Protocol):
    partition_index: int
    acknowledgement_batches: Sequence[_AckBatch]


class _AckTopic(Protocol):
    topic_id: uuid.UUID | None
    partitions: Sequence[_AckPartition]


class _ShareAcknowledgeRequest(Protocol):
    group_id: str | None
    member_id: str | None
    share_session_epoch: int
    topics: Sequence[_AckTopic]


async def handle_share_acknowledge(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _ShareAcknowledgeRequest)
    shares = broker.share_groups
    host, port = broker.config.advertised_address(ctx.listener_name)
    node = broker.config.node_id

    def answer(
        error: ErrorCode, message: str | None, responses: list[dict[str, Any]]
    ) -> ResponseBody:
        return response_for(
            header.api_key,
            header.api_version,
            {
                "throttle_time": 0,
                "error_code": error,
                "error_message": message,
                "acquisition_lock_timeout": shares.lock_duration_ms(body.group_id or ""),
                "responses": responses,
                "node_endpoints": [{"node_id": node, "host": host, "port": port, "rack": None}],
            },
        )

    group_id, member_id = body.group_id or "", body.member_id or ""
    epoch = int(body.share_session_epoch)
    if not group_id or not member_id:
        return answer(ErrorCode.INVALID_REQUEST, "GroupId and MemberId must be set", [])
    if not may_use_group(broker, ctx, group_id):
        return answer(ErrorCode.GROUP_AUTHORIZATION_FAILED, None, [])
    if epoch == INITIAL_EPOCH:
        return answer(
            ErrorCode.INVALID_SHARE_SESSION_EPOCH,
            "Acknowledge request cannot open a share session (epoch 0)",
            [],
        )
    named = [(t, topic_name(broker, t.topic_id)) for t in body.topics]
    readable = broker.authorized_names(
        ctx, AclOperation.READ, ResourceType.TOPIC, {n for _, n in named if n}
    )
    await load_states(
        broker,
        group_id,
        {(n, int(p.partition_index)) for t, n in named if n in readable for p in t.partitions},
    )
    # No await from here until the acknowledgements are applied.
    shares.expire(group_id)
    closing = shares.sessions.get((group_id, member_id)) if epoch == FINAL_EPOCH else None
    try:
        shares.session(group_id, member_id, epoch, set(), set())
    except ShareSessionError as exc:
        return answer(exc.code, str(exc), [])
    # Every partition's acknowledgements are applied before any write is awaited: the
    # writes of several partitions overlap.
    outcomes: list[tuple[_AckTopic, str | None, list[tuple[int, AckOutcome]]]] = []
    for topic, name in named:
        partitions: list[tuple[int, AckOutcome]] = []
        for p in topic.partitions:
            index = int(p.partition_index)
            if name is None:
                partitions.append((index, (ErrorCode.UNKNOWN_TOPIC_ID, None)))
            elif name not in readable:
                partitions.append((index, (ErrorCode.TOPIC_AUTHORIZATION_FAILED, None)))
            else:
                partitions.append(
                    (
                        index,
                        acknowledge(
                            broker, group_id, member_id, name, index, p.acknowledgement_batches
                        ),
                    )
                )
        outcomes.append((topic, name, partitions))
    if closing is not None:  # after its acknowledgements: what it still holds goes back
        shares.release_session(group_id, member_id, closing.partitions)
    ctx.effects_applied()
    responses = []
    for topic, name, partitions in outcomes:
        answered = []
        for index, outcome in partitions:
            error, message = await settled(outcome)
            answered.append(
                {
                    "partition_index": index,
                    "error_code": error,
                    "error_message": message,
                    "current_leader": {
                        "leader_id": node,
                        "leader_epoch": epoch_of(broker.partition(name, index) if name else None),
                    },
                }
            )
        responses.append({"topic_id": topic.topic_id, "partitions": answered})
    return answer(ErrorCode.NONE, None, responses)
