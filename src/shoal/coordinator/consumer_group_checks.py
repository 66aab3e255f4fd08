"""Kafka 4.4's checks of a ConsumerGroupHeartbeat before the group sees it: the fields each
kind of heartbeat (join, heartbeat, leave, static leave) needs, the assignor, the regex; in
Kafka's order and with its messages (checked against it by the differential scenarios)."""

from __future__ import annotations

from typing import Final

from shoal.coordinator.consumer_group import (
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerGroupError,
    ConsumerHeartbeat,
    compile_regex,
)
from shoal.protocol.errors import ErrorCode

MEMBER_ID_REQUIRED_VERSION: Final = 1
"""ConsumerGroupHeartbeat v1+ (KIP-1082): the consumer makes its member id, so it is never
empty; v0 members join with an empty one and the coordinator makes it."""


def check_heartbeat(
    group_id: str,
    request: ConsumerHeartbeat,
    *,
    api_version: int,
    assignors: tuple[str, ...],
    owned_given: bool,
) -> None:
    """Kafka 4.4's checks of a ConsumerGroupHeartbeat, in its order and with its messages.

    ``owned_given``: the request's TopicPartitions is not null (``request.owned`` also is None
    for a list of only unknown topic ids, which is not the same).
    """

    if api_version >= MEMBER_ID_REQUIRED_VERSION and not request.member_id:
        raise _invalid("MemberId can't be empty.")
    if not group_id:
        raise _invalid("GroupId can't be empty.")
    if request.instance_id == "":
        raise _invalid("InstanceId can't be empty.")
    if request.rack_id == "":
        raise _invalid("RackId can't be empty.")
    _check_epoch_fields(request, owned_given=owned_given)
    if request.server_assignor is not None and request.server_assignor not in assignors:
        raise ConsumerGroupError(
            ErrorCode.UNSUPPORTED_ASSIGNOR,
            f"ServerAssignor {request.server_assignor} is not supported. Supported assignors: "
            f"{', '.join(assignors)}.",
        )
    if request.subscribed_topic_regex:
        compile_regex(request.subscribed_topic_regex)


def _invalid(message: str) -> ConsumerGroupError:
    return ConsumerGroupError(ErrorCode.INVALID_REQUEST, message)


def _check_epoch_fields(request: ConsumerHeartbeat, *, owned_given: bool) -> None:
    """The fields each kind of heartbeat (join, heartbeat, leave, static leave) needs."""
    epoch = request.member_epoch
    if epoch > 0 or epoch == LEAVE_EPOCH:
        if not request.member_id:
            raise _invalid("MemberId can't be empty.")
    elif epoch == 0:
        if request.rebalance_timeout_ms == -1:
            raise _invalid("RebalanceTimeoutMs must be provided in first request.")
        if not owned_given or request.owned:
            raise _invalid("TopicPartitions must be empty when (re-)joining.")
        if request.subscribed_topic_names is None and request.subscribed_topic_regex is None:
            raise _invalid(
                "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when "
                "(re-)joining."
            )
    elif epoch == STATIC_LEAVE_EPOCH:
        if not request.member_id:
            raise _invalid("MemberId can't be empty.")
        if request.instance_id is None:
            raise _invalid("InstanceId can't be null.")
    else:
        raise _invalid("MemberEpoch is invalid.")
