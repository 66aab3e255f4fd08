"""``controller_mutation_rate`` in the handlers that create and delete partitions (KIP-599).

CreateTopics, CreatePartitions and DeleteTopics take one :class:`MutationQuota` per request
(:func:`mutation_quota`), :func:`charge` it with each topic's partitions just before changing
anything, and answer with its ``throttle_ms``. Strict from the versions Kafka makes it strict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shoal.broker.topics import TopicError
from shoal.protocol import ErrorCode
from shoal.security.quota_mutations import MutationQuota, MutationQuotaExceeded
from shoal.security.quotas import quota_user

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

STRICT_SINCE_CREATE_TOPICS: Final = 6
STRICT_SINCE_DELETE_TOPICS: Final = 5
STRICT_SINCE_CREATE_PARTITIONS: Final = 3
"""The first versions whose clients know THROTTLING_QUOTA_EXCEEDED (Kafka's strictSinceVersion);
older ones get a permissive quota: the change is made, and only throttled."""


def mutation_quota(
    broker: Broker, ctx: RequestContext, api_version: int, strict_since: int
) -> MutationQuota:
    return broker.quotas.mutations.for_request(
        quota_user(ctx.principal), ctx.client_id or "", strict=api_version >= strict_since
    )


def charge(quota: MutationQuota, partitions: int) -> None:
    """Count ``partitions`` against the quota; :class:`TopicError` with
    THROTTLING_QUOTA_EXCEEDED when a strict quota is already exhausted."""
    try:
        quota.charge(partitions)
    except MutationQuotaExceeded as exc:
        # No message, as Kafka: its message would only repeat the error code's own, so Kafka
        # sends null (the handlers answer an empty message as null).
        raise TopicError(ErrorCode.THROTTLING_QUOTA_EXCEEDED, "") from exc
