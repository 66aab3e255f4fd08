"""Member epochs and assignments of a KIP-848 consumer group (``shoal group describe
--members``), asked of the group coordinator with ConsumerGroupDescribe.

confluent-kafka's admin API describes members without their epochs, so the CLI sends this one
request itself (:mod:`shoal.cli.wire`) to the coordinator the admin client found. On a SASL or
TLS listener (``security.protocol`` other than PLAINTEXT) the members are shown without epochs
instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from shoal.cli.wire import request

CONSUMER_GROUP_DESCRIBE: Final = 69
VERSION: Final = 0


@dataclass(frozen=True)
class MemberEpochs:
    member_id: str
    client_id: str
    host: str
    member_epoch: int
    assignment: dict[str, list[int]]
    target: dict[str, list[int]]


@dataclass(frozen=True)
class GroupEpochs:
    state: str
    group_epoch: int
    assignment_epoch: int
    assignor: str
    members: list[MemberEpochs]


def _parts(assignment: Any) -> dict[str, list[int]]:
    return {
        tp.topic_name: sorted(int(p) for p in tp.partitions) for tp in assignment.topic_partitions
    }


def describe_epochs(host: str, port: int, group: str, timeout_s: float) -> GroupEpochs | None:
    """The group as its coordinator describes it; None if it is not a consumer group.
    Raises OSError (or ConnectionError) when the coordinator cannot be asked."""
    response = request(
        (host, port),
        CONSUMER_GROUP_DESCRIBE,
        VERSION,
        {"group_ids": [group], "include_authorized_operations": False},
        timeout_s,
    )
    described: Any = getattr(response, "groups", [None])[0]
    if described is None:  # pragma: no cover - every ConsumerGroupDescribe answer has groups
        raise ConnectionError("the coordinator's answer names no group")
    if int(described.error_code) != 0:
        return None
    return GroupEpochs(
        state=described.group_state,
        group_epoch=int(described.group_epoch),
        assignment_epoch=int(described.assignment_epoch),
        assignor=described.assignor_name,
        members=[
            MemberEpochs(
                member_id=m.member_id,
                client_id=m.client_id,
                host=m.client_host,
                member_epoch=int(m.member_epoch),
                assignment=_parts(m.assignment),
                target=_parts(m.target_assignment),
            )
            for m in described.members
        ],
    )


def assignment_text(assignment: dict[str, list[int]]) -> str:
    """Kafka's tool's form: ``topic:0,1;other:2``, ``-`` for nothing."""
    if not assignment:
        return "-"
    return ";".join(f"{t}:{','.join(map(str, ps))}" for t, ps in sorted(assignment.items()))
