"""CreatePartitions (37): grow topics to a larger partition count (or only check, with
validate_only). Partitions are never removed: the same or a smaller count is INVALID_PARTITIONS."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.broker.mutation_quota import STRICT_SINCE_CREATE_PARTITIONS, charge, mutation_quota
from shoal.broker.topics import TopicError
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.security.quota_mutations import MutationQuota
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

log = logging.getLogger(__name__)


class _Assignment(Protocol):
    broker_ids: Sequence[int]


class _PartitionsTopic(Protocol):
    name: str
    count: int
    assignments: Sequence[_Assignment] | None


class _CreatePartitionsRequest(Protocol):
    topics: Sequence[_PartitionsTopic]
    validate_only: bool


async def handle_create_partitions(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _CreatePartitionsRequest)
    quota = mutation_quota(broker, ctx, header.api_version, STRICT_SINCE_CREATE_PARTITIONS)
    counts = Counter(str(topic.name) for topic in body.topics)
    results: list[dict[str, Any]] = []
    for topic in body.topics:
        name = str(topic.name)
        code: int = ErrorCode.NONE
        message: str | None = None
        try:
            if counts[name] > 1:
                raise TopicError(ErrorCode.INVALID_REQUEST, f"topic {name!r} is named twice")
            if not broker.authorize(ctx, AclOperation.ALTER, ResourceType.TOPIC, name):
                raise TopicError(
                    ErrorCode.TOPIC_AUTHORIZATION_FAILED, "The topic authorization is failed."
                )
            _grow(
                broker, name, int(topic.count), topic.assignments, bool(body.validate_only), quota
            )
        except TopicError as exc:
            code, message = exc.error_code, str(exc) or None
        except (StorageError, OSError) as exc:
            log.error("adding partitions to %s failed: %s", name, exc)
            code, message = ErrorCode.KAFKA_STORAGE_ERROR, f"adding partitions failed: {exc}"
        results.append({"name": name, "error_code": code, "error_message": message})
    return response_for(
        header.api_key,
        header.api_version,
        {"throttle_time": quota.throttle_ms, "results": results},
    )


def _grow(
    broker: Broker,
    name: str,
    count: int,
    assignments: Sequence[_Assignment] | None,
    validate_only: bool,
    quota: MutationQuota,
) -> None:
    # Checked without creating first, so a bad assignment is reported only for a valid count.
    topic = broker.create_partitions(name, count, validate_only=True)
    if assignments is not None:
        _check_assignments(broker, count - topic.partitions, assignments)
    charge(quota, count - topic.partitions)  # after every check, as Kafka's controller
    if not validate_only:
        broker.create_partitions(name, count)


def _check_assignments(broker: Broker, added: int, assignments: Sequence[_Assignment]) -> None:
    """A manual assignment names the brokers of each new partition: here only this one."""
    if len(assignments) != added:
        raise TopicError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            f"{added} partitions would be added but {len(assignments)} assignments were given",
        )
    node = broker.config.node_id
    for assignment in assignments:
        if list(assignment.broker_ids) != [node]:
            raise TopicError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"assignment {list(assignment.broker_ids)} names brokers shoal does not have: "
                f"it is a single node, so assign each new partition to [{node}]",
            )
