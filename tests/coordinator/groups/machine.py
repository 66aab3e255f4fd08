"""A test harness around the pure group coordinator: fake clock, predictable member ids."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from shoal.coordinator.group import JoinRequest, JoinResult, SyncResult
from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.group_coordinator import GroupCoordinator
from shoal.coordinator.group_state import GroupState
from shoal.coordinator.offsets_log import OffsetsLog
from shoal.testing.clock import FakeClock

SESSION_MS = 10_000
REBALANCE_MS = 30_000
RANGE = (("range", b"range-meta"),)


@dataclass
class Answer:
    """A parked request's answer box: empty until the coordinator calls back."""

    results: list[JoinResult | SyncResult] = field(default_factory=list)

    def __call__(self, result: JoinResult | SyncResult) -> None:
        self.results.append(result)

    @property
    def done(self) -> bool:
        return bool(self.results)

    @property
    def join(self) -> JoinResult:
        assert len(self.results) == 1, f"expected one answer, got {self.results}"
        result = self.results[0]
        assert isinstance(result, JoinResult)
        return result

    @property
    def sync(self) -> SyncResult:
        assert len(self.results) == 1, f"expected one answer, got {self.results}"
        result = self.results[0]
        assert isinstance(result, SyncResult)
        return result


class Machine:
    def __init__(
        self, *, delay_ms: int = 0, offsets_log: OffsetsLog | None = None, **config: int
    ) -> None:
        self.clock = FakeClock()
        ids = itertools.count(1)
        self.config = GroupConfig(
            initial_rebalance_delay_ms=delay_ms, min_session_timeout_ms=1000, **config
        )
        self.coordinator = GroupCoordinator(
            self.clock, self.config, offsets_log, new_member_id=lambda p: f"{p}-{next(ids)}"
        )

    def group(self, group_id: str = "g") -> object:
        return self.coordinator.groups[group_id]

    def state(self, group_id: str = "g") -> GroupState:
        return self.coordinator.groups[group_id].state

    def join(
        self,
        member_id: str = "",
        *,
        group_id: str = "g",
        instance: str | None = None,
        protocols: tuple[tuple[str, bytes], ...] = RANGE,
        protocol_type: str = "consumer",
        session_ms: int = SESSION_MS,
        rebalance_ms: int = REBALANCE_MS,
        client_id: str = "c",
        require_known_member_id: bool = True,
    ) -> Answer:
        answer = Answer()
        request = JoinRequest(
            member_id,
            instance,
            protocol_type,
            protocols,
            session_ms,
            rebalance_ms,
            client_id=client_id,
            client_host="/127.0.0.1",
            require_known_member_id=require_known_member_id,
        )
        self.coordinator.join(group_id, request, answer)
        return answer

    def new_member(self, **kwargs: object) -> tuple[str, Answer]:
        """Join the way a v4+ client does: MEMBER_ID_REQUIRED, then rejoin with the id."""
        first = self.join(**kwargs)  # type: ignore[arg-type]
        assert first.join.error.name == "MEMBER_ID_REQUIRED"
        member_id = first.join.member_id
        return member_id, self.join(member_id, **kwargs)  # type: ignore[arg-type]

    def sync(
        self,
        member_id: str,
        generation: int,
        assignments: dict[str, bytes] | None = None,
        *,
        group_id: str = "g",
        instance: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> Answer:
        answer = Answer()
        self.coordinator.sync(
            group_id,
            member_id,
            instance,
            generation,
            assignments or {},
            answer,
            protocol_type=protocol_type,
            protocol_name=protocol_name,
        )
        return answer

    def heartbeat(
        self, member_id: str, generation: int, *, group_id: str = "g", instance: str | None = None
    ) -> str:
        return self.coordinator.heartbeat(group_id, member_id, instance, generation).name

    def advance(self, ms: int) -> None:
        """Move time, firing every timer due on the way in deadline order."""
        target = self.clock.monotonic_ms() + ms
        while True:
            deadline = self.coordinator.next_deadline_ms()
            if deadline is None or deadline > target:
                break
            step = max(0, int(deadline - self.clock.monotonic_ms()))
            self.clock.advance(step)
            self.coordinator.advance()
            if step == 0 and self.coordinator.next_deadline_ms() == deadline:
                raise AssertionError("a timer fired but did not move its deadline")
        self.clock.advance(int(target - self.clock.monotonic_ms()))
        self.coordinator.advance()

    def stable_group(self, n: int) -> list[str]:
        """n members joined and synced; returns their member ids, the leader first."""
        answers = dict(self.new_member() for _ in range(n))
        if self.state() is GroupState.PREPARING_REBALANCE:
            # Members answered for an earlier generation rejoin, as their heartbeat tells them.
            for member_id, answer in list(answers.items()):
                if answer.done:
                    answers[member_id] = self.join(member_id)
        assert self.state() is GroupState.COMPLETING_REBALANCE
        ids = list(answers)
        generation = answers[ids[0]].join.generation_id
        leader = answers[ids[0]].join.leader_id
        syncs = [self.sync(mid, generation, {m: m.encode() for m in ids}) for mid in ids]
        assert all(s.sync.error.name == "NONE" for s in syncs)
        assert self.state() is GroupState.STABLE
        return [leader] + [m for m in ids if m != leader]
