"""The group members' steps of the simulation (a mixin of :class:`Simulation`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal.protocol import ErrorCode
from tests.simulation import consumers as cons
from tests.simulation.node import InFlight
from tests.simulation.topic import PARTITIONS, TOPIC

if TYPE_CHECKING:
    from tests.simulation.sim import Simulation

    _Base = Simulation
else:
    _Base = object


class GroupSteps(_Base):
    def _group(self) -> None:
        member = self.rng.choice(self.members)
        if member.flight is not None:
            self._note(f"{member.name}: still waiting for its request")
            return
        if member.standalone or (member.state == "stable" and self.rng.random() < 0.5):
            self._commit(member)
        elif member.state == "out":
            self._note(f"{member.name}: JoinGroup {member.group} as {member.member_id!r}")
            member.flight = self._send(
                cons.JOIN, member.join_values(TOPIC), lambda f: self._answered(member, "join", f)
            )
        elif member.state == "syncing":
            self._note(f"{member.name}: SyncGroup generation {member.generation}")
            member.flight = self._send(
                cons.SYNC,
                member.sync_values(TOPIC, PARTITIONS),
                lambda f: self._answered(member, "sync", f),
            )
        elif self.rng.random() < 0.85:
            self._note(f"{member.name}: Heartbeat generation {member.generation}")
            member.flight = self._send(
                cons.HEARTBEAT,
                member.heartbeat_values(),
                lambda f: self._answered(member, "heartbeat", f),
            )
        else:
            self._note(f"{member.name}: LeaveGroup")
            member.flight = self._send(
                cons.LEAVE, member.leave_values(), lambda f: self._answered(member, "leave", f)
            )
            member.reset(forget_id=True)

    def _commit(self, member: cons.Member) -> None:
        partitions = member.assigned if not member.standalone else list(range(PARTITIONS))
        if not partitions:
            partitions = [self.rng.randrange(PARTITIONS)]
        chosen = self.rng.sample(partitions, self.rng.randint(1, len(partitions)))
        offsets = {p: self.rng.randint(0, 500) for p in chosen}
        commits = {p: self.commits.sent(member.group, p, v) for p, v in offsets.items()}
        self._note(f"{member.name}: OffsetCommit {member.group} {offsets}")
        member.flight = self._send(
            cons.COMMIT,
            member.commit_values(TOPIC, offsets),
            lambda f: self._committed(member, commits, f),
        )

    def _committed(self, member: cons.Member, commits: dict[int, cons.Commit], f: InFlight) -> None:
        member.flight = None
        self._note(
            f"{member.name}: OffsetCommit -> {member.on_commit(self.node.answer(f), commits)}"
        )

    def _answered(self, member: cons.Member, what: str, flight: InFlight) -> None:
        member.flight = None
        answer = self.node.answer(flight)
        if what == "join":
            outcome = member.on_join(answer)
        elif what == "sync":
            outcome = member.on_sync(answer, TOPIC)
        elif what == "heartbeat":
            outcome = member.on_heartbeat(answer)
        else:
            outcome = ErrorCode(answer.error_code).name
        self._note(f"{member.name}: {what} -> {outcome}")
