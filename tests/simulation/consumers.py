"""Simulated group members (classic protocol: JoinGroup, SyncGroup, Heartbeat, OffsetCommit,
LeaveGroup) and a standalone committer (generation -1, as a consumer using assign()), with the
model of the offsets they were told are committed."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Final

from shoal.coordinator.consumer_protocol import assigned_partitions, encode_assignment
from shoal.protocol import ApiKey, ErrorCode
from tests.simulation.model import Violation
from tests.simulation.node import InFlight

JOIN = (int(ApiKey.JOIN_GROUP), 9)
SYNC = (int(ApiKey.SYNC_GROUP), 5)
HEARTBEAT = (int(ApiKey.HEARTBEAT), 4)
LEAVE = (int(ApiKey.LEAVE_GROUP), 5)
COMMIT = (int(ApiKey.OFFSET_COMMIT), 8)
SESSION_TIMEOUT_MS: Final = 10_000
REBALANCE_TIMEOUT_MS: Final = 20_000

REFUSED: Final = frozenset(
    {
        ErrorCode.ILLEGAL_GENERATION,
        ErrorCode.UNKNOWN_MEMBER_ID,
        ErrorCode.REBALANCE_IN_PROGRESS,
        ErrorCode.FENCED_INSTANCE_ID,
    }
)
"""Commit answers that say the offsets were not stored (the member must rejoin first)."""


def subscription(topic: str) -> bytes:
    """A consumer protocol Subscription v0 of one topic, without user data."""
    name = topic.encode()
    return struct.pack(">hih", 0, 1, len(name)) + name + struct.pack(">i", -1)


@dataclass
class Commit:
    number: int
    value: int
    status: str  # in flight | acked | refused | unknown


@dataclass
class CommitModel:
    """Per (group, partition), every commit sent, in the order the broker applied them."""

    commits: dict[tuple[str, int], list[Commit]] = field(default_factory=dict)
    numbers: int = 0

    def sent(self, group: str, partition: int, value: int) -> Commit:
        self.numbers += 1
        commit = Commit(self.numbers, value, "in flight")
        self.commits.setdefault((group, partition), []).append(commit)
        return commit

    def lost_answers(self) -> None:
        """A crash: the requests in flight have an unknown outcome."""
        for commits in self.commits.values():
            for commit in commits:
                if commit.status == "in flight":
                    commit.status = "unknown"

    def allowed(self, key: tuple[str, int]) -> set[int | None]:
        """The values the committed offset may have: the last acknowledged commit's, or that
        of any later commit that may have been applied."""
        commits = self.commits.get(key, [])
        acked = [c for c in commits if c.status == "acked"]
        last = acked[-1].number if acked else 0
        values: set[int | None] = {acked[-1].value} if acked else {None}
        values |= {c.value for c in commits if c.number > last and c.status != "refused"}
        return values

    def check(self, committed: dict[tuple[str, int], int | None]) -> None:
        for key in self.commits:
            value = committed.get(key)
            allowed = self.allowed(key)
            if value not in allowed:
                raise Violation(
                    f"group {key[0]} partition {key[1]}: committed offset {value}, "
                    f"allowed {sorted(allowed, key=lambda v: -1 if v is None else v)}"
                )


@dataclass
class Member:
    name: str
    group: str
    standalone: bool = False
    member_id: str = ""
    generation: int = -1
    state: str = "out"  # out | syncing | stable
    leader: bool = False
    members: list[str] = field(default_factory=list)
    assigned: list[int] = field(default_factory=list)
    flight: InFlight | None = None

    def reset(self, *, forget_id: bool) -> None:
        self.state = "out"
        self.generation = -1
        self.assigned = []
        if forget_id:
            self.member_id = ""

    def join_values(self, topic: str) -> dict[str, Any]:
        return {
            "group_id": self.group,
            "session_timeout": SESSION_TIMEOUT_MS,
            "rebalance_timeout": REBALANCE_TIMEOUT_MS,
            "member_id": self.member_id,
            "group_instance_id": None,
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": subscription(topic)}],
            "reason": None,
        }

    def on_join(self, answer: Any) -> str:
        error = ErrorCode(answer.error_code)
        if error is ErrorCode.MEMBER_ID_REQUIRED:
            self.member_id = answer.member_id
            return error.name
        if error is not ErrorCode.NONE:
            self.reset(forget_id=error is ErrorCode.UNKNOWN_MEMBER_ID)
            return error.name
        self.member_id = answer.member_id
        self.generation = int(answer.generation_id)
        self.leader = answer.leader == answer.member_id
        self.members = sorted(m.member_id for m in answer.members)
        self.state = "syncing"
        return f"generation {self.generation}{' leader' if self.leader else ''}"

    def sync_values(self, topic: str, partitions: int) -> dict[str, Any]:
        assignments = []
        if self.leader:
            for i, member in enumerate(self.members):
                mine = [p for p in range(partitions) if p % len(self.members) == i]
                assignments.append(
                    {"member_id": member, "assignment": encode_assignment({topic: mine})}
                )
        return {
            "group_id": self.group,
            "generation_id": self.generation,
            "member_id": self.member_id,
            "group_instance_id": None,
            "protocol_type": "consumer",
            "protocol_name": "range",
            "assignments": assignments,
        }

    def on_sync(self, answer: Any, topic: str) -> str:
        error = ErrorCode(answer.error_code)
        if error is not ErrorCode.NONE:
            self.reset(forget_id=error is ErrorCode.UNKNOWN_MEMBER_ID)
            return error.name
        self.assigned = sorted(assigned_partitions(answer.assignment).get(topic, []))
        self.state = "stable"
        return f"assigned {self.assigned}"

    def heartbeat_values(self) -> dict[str, Any]:
        return {
            "group_id": self.group,
            "generation_id": self.generation,
            "member_id": self.member_id,
            "group_instance_id": None,
        }

    def on_heartbeat(self, answer: Any) -> str:
        error = ErrorCode(answer.error_code)
        if error is not ErrorCode.NONE:
            self.reset(forget_id=error is ErrorCode.UNKNOWN_MEMBER_ID)
        return error.name

    def leave_values(self) -> dict[str, Any]:
        return {
            "group_id": self.group,
            "members": [{"member_id": self.member_id, "group_instance_id": None, "reason": None}],
        }

    def commit_values(self, topic: str, offsets: dict[int, int]) -> dict[str, Any]:
        return {
            "group_id": self.group,
            "generation_id_or_member_epoch": -1 if self.standalone else self.generation,
            "member_id": "" if self.standalone else self.member_id,
            "group_instance_id": None,
            "topics": committed_topics(topic, offsets),
        }

    def on_commit(self, answer: Any, commits: dict[int, Commit]) -> str:
        errors = {
            int(p.partition_index): ErrorCode(p.error_code) for p in answer.topics[0].partitions
        }
        for partition, commit in commits.items():
            error = errors.get(partition)
            if error is None:
                raise Violation(f"{self.name}: commit answer without partition {partition}")
            if error is ErrorCode.NONE:
                commit.status = "acked"
            elif error in REFUSED:
                commit.status = "refused"
                if not self.standalone:
                    self.reset(forget_id=error is ErrorCode.UNKNOWN_MEMBER_ID)
            else:
                commit.status = "unknown"
        return ", ".join(f"p{p}:{e.name}" for p, e in sorted(errors.items()))


def committed_topics(topic: str, offsets: dict[int, int]) -> list[dict[str, Any]]:
    """The ``topics`` of an OffsetCommit or TxnOffsetCommit: one topic's next offsets."""
    return [
        {
            "name": topic,
            "partitions": [
                {
                    "partition_index": p,
                    "committed_offset": value,
                    "committed_leader_epoch": -1,
                    "committed_metadata": "",
                }
                for p, value in sorted(offsets.items())
            ],
        }
    ]
