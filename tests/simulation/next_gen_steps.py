"""KIP-848 consumer group members in the simulation (a mixin of :class:`Simulation`).

Three members of one group speak the consumer group protocol (ConsumerGroupHeartbeat v1, the
member id made by the client): they join, heartbeat with the partitions they own, take what
the broker assigns, give up what it revokes, leave, and commit offsets (OffsetCommit v9, with
their member epoch) for the partitions they own, while the clock jumps past session and
rebalance timeouts and the broker crashes, loses power and restarts under them (the group's
state is in ``__consumer_offsets``).

What a consumer relies on, checked after every step:

* **one owner per partition**: no two members the broker still counts in the group hold the
  same partition, each as its client last understood its assignment (a member fenced by a
  timeout may still believe it owns its partitions until its next heartbeat; the broker no
  longer lists it, and refuses its commits);
* a member's epoch as the broker has it is never below the one it was told (a restart must
  not forget an answered heartbeat), and the broker answers no heartbeat with GROUP_ID_NOT_FOUND
  while a member was told it is in the group;
* an acknowledged commit stays (the classic members' commit model, :class:`CommitModel`).

A heartbeat whose answer was lost (a crash) leaves the member as it was: it heartbeats again
with the same epoch and partitions, as Kafka's consumer does, and the broker either carries on
with it or fences it (then it rejoins with epoch 0 and nothing owned).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from shoal.protocol import ApiKey, ErrorCode
from tests.simulation import consumers as cons
from tests.simulation.model import Violation
from tests.simulation.node import InFlight
from tests.simulation.topic import PARTITIONS, TOPIC

if TYPE_CHECKING:
    from tests.simulation.sim import Simulation

    _Base = Simulation
else:
    _Base = object

NEXT_GEN_GROUP: Final = "g848"
HEARTBEAT: Final = (int(ApiKey.CONSUMER_GROUP_HEARTBEAT), 1)
COMMIT: Final = (int(ApiKey.OFFSET_COMMIT), 9)
REBALANCE_TIMEOUT_MS: Final = 20_000
LEAVE_RATIO: Final = 0.1
COMMIT_RATIO: Final = 0.3

FENCED: Final = frozenset({ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_MEMBER_EPOCH})
"""Heartbeat answers after which the member has lost its partitions and joins again."""
RETRY: Final = frozenset(
    {
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.KAFKA_STORAGE_ERROR,
    }
)
"""Heartbeat answers after which the member tries again as it was."""
COMMIT_REFUSED: Final = frozenset(
    {ErrorCode.STALE_MEMBER_EPOCH, ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_MEMBER_EPOCH}
)


@dataclass
class NextGenMember:
    name: str
    member_id: str
    epoch: int = 0
    owned: frozenset[int] = frozenset()
    """The partitions this member's client believes it owns (its last answered assignment)."""
    flight: InFlight | None = None


@dataclass
class NextGenModel:
    members: list[NextGenMember] = field(default_factory=list)


class NextGenSteps(_Base):
    next_gen: NextGenModel

    def _next_gen_members(self) -> NextGenModel:
        ids = (uuid.UUID(int=self.rng.getrandbits(128), version=4) for _ in range(3))
        return NextGenModel([NextGenMember(f"n{i}", str(u)) for i, u in enumerate(ids)])

    def _next_gen(self) -> None:
        member = self.rng.choice(self.next_gen.members)
        if member.flight is not None:
            self._note(f"{member.name}: still waiting for its request")
            return
        if member.epoch > 0 and member.owned and self.rng.random() < COMMIT_RATIO:
            self._next_gen_commit(member)
            return
        leaving = member.epoch > 0 and self.rng.random() < LEAVE_RATIO
        epoch = -1 if leaving else member.epoch
        values: dict[str, Any] = {
            "group_id": NEXT_GEN_GROUP,
            "member_id": member.member_id,
            "member_epoch": epoch,
            "instance_id": None,
            "rack_id": None,
            "rebalance_timeout": REBALANCE_TIMEOUT_MS if member.epoch == 0 else -1,
            "subscribed_topic_names": [TOPIC] if member.epoch == 0 else None,
            "subscribed_topic_regex": None,
            "server_assignor": None,
            "topic_partitions": self._owned_values(member),
        }
        if leaving:
            member.owned = frozenset()  # a leaving consumer stops reading first
            member.epoch = 0
        self._note(
            f"{member.name}: ConsumerGroupHeartbeat epoch {epoch} owning {sorted(member.owned)}"
        )
        member.flight = self._send(
            HEARTBEAT, values, lambda f: self._on_next_gen_heartbeat(member, epoch, f)
        )

    def _owned_values(self, member: NextGenMember) -> list[dict[str, Any]]:
        if member.epoch == 0:
            return []
        assert self.node.broker is not None
        topic = self.node.broker.topics.get(TOPIC)
        assert topic is not None
        return [{"topic_id": topic.topic_id, "partitions": sorted(member.owned)}]

    def _on_next_gen_heartbeat(self, member: NextGenMember, sent: int, flight: InFlight) -> None:
        member.flight = None
        answer = self.node.answer(flight)
        error = ErrorCode(answer.error_code)
        if sent == -1:
            self._note(f"{member.name}: leave -> {error.name}")
            return  # it left whatever the answer: it joins again with epoch 0
        if error is ErrorCode.NONE:
            member.epoch = int(answer.member_epoch)
            if answer.assignment is not None:
                member.owned = frozenset(self._assigned(answer.assignment))
            self._note(f"{member.name}: -> epoch {member.epoch} owning {sorted(member.owned)}")
        elif error in FENCED:
            member.epoch, member.owned = 0, frozenset()
            self._note(f"{member.name}: -> {error.name}, joins again")
        elif error in RETRY:
            self._note(f"{member.name}: -> {error.name}, retries")
        else:
            raise Violation(
                f"{member.name}: ConsumerGroupHeartbeat -> {error.name}: {answer.error_message}"
            )

    def _assigned(self, assignment: Any) -> set[int]:
        assert self.node.broker is not None
        topic = self.node.broker.topics.get(TOPIC)
        assert topic is not None
        out: set[int] = set()
        for part in assignment.topic_partitions:
            if part.topic_id != topic.topic_id:
                raise Violation(f"an assignment of an unsubscribed topic id {part.topic_id}")
            out.update(int(p) for p in part.partitions)
        return out

    def _next_gen_commit(self, member: NextGenMember) -> None:
        chosen = self.rng.sample(sorted(member.owned), self.rng.randint(1, len(member.owned)))
        offsets = {p: self.rng.randint(0, 500) for p in chosen}
        commits = {p: self.commits.sent(NEXT_GEN_GROUP, p, v) for p, v in offsets.items()}
        self._note(f"{member.name}: OffsetCommit epoch {member.epoch} {offsets}")
        values = {
            "group_id": NEXT_GEN_GROUP,
            "generation_id_or_member_epoch": member.epoch,
            "member_id": member.member_id,
            "group_instance_id": None,
            "topics": cons.committed_topics(TOPIC, offsets),
        }
        member.flight = self._send(
            COMMIT, values, lambda f: self._on_next_gen_commit(member, commits, f)
        )

    def _on_next_gen_commit(
        self, member: NextGenMember, commits: dict[int, cons.Commit], flight: InFlight
    ) -> None:
        member.flight = None
        answer = self.node.answer(flight)
        errors = {
            int(p.partition_index): ErrorCode(p.error_code) for p in answer.topics[0].partitions
        }
        for partition, commit in commits.items():
            error = errors[partition]
            if error is ErrorCode.NONE:
                commit.status = "acked"
            elif error in COMMIT_REFUSED:
                commit.status = "refused"
            elif error in RETRY:
                commit.status = "unknown"
            else:
                raise Violation(f"{member.name}: OffsetCommit p{partition} -> {error.name}")
        self._note(
            f"{member.name}: OffsetCommit -> {sorted((p, e.name) for p, e in errors.items())}"
        )

    def _next_gen_restarted(self) -> None:
        for member in self.next_gen.members:
            member.flight = None  # its answer is lost: it heartbeats again as it was

    def _check_next_gen(self) -> None:
        assert self.node.broker is not None
        group = self.node.broker.groups.consumer_group(NEXT_GEN_GROUP)
        if group is None:
            return
        owners: dict[int, str] = {}
        for member in self.next_gen.members:
            listed = group.members.get(member.member_id)
            if listed is None:
                continue
            if listed.member_epoch < member.epoch:
                raise Violation(
                    f"group {NEXT_GEN_GROUP}: {member.name} was told epoch {member.epoch}, the "
                    f"broker has it at {listed.member_epoch} (a restart forgot what it answered)"
                )
            for partition in member.owned:
                other = owners.setdefault(partition, member.name)
                if other != member.name:
                    raise Violation(
                        f"group {NEXT_GEN_GROUP}: {other} and {member.name} both own "
                        f"{TOPIC}-{partition} (member epochs "
                        f"{[(m.name, m.epoch, sorted(m.owned)) for m in self.next_gen.members]})"
                    )
        if any(p >= PARTITIONS for p in owners):
            raise Violation(f"group {NEXT_GEN_GROUP}: a partition past {PARTITIONS} assigned")
