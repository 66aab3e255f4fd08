"""A KIP-932 share group's membership, as Kafka 4.4's coordinator runs it for
ShareGroupHeartbeat: pure logic with an injected clock.

- a member names itself (the client makes a UUID), joins with epoch 0 and its subscription,
  heartbeats with the epoch it was last given, leaves with epoch -1;
- any change of members, subscriptions or partition counts bumps the group epoch, and the
  ``simple`` assignor (:mod:`shoal.coordinator.share_assignor`) gives the new target;
- share members hold no partition exclusively, so there is no revocation: a member moves to
  the group's assignment epoch at once, and gets its assignment in the answer whenever it
  changed (or it joined);
- a member silent for ``group.share.session.timeout.ms`` is removed (its records are
  released by the caller).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from shoal.clock import Clock
from shoal.coordinator.share_assignor import Assignment, simple_assign
from shoal.protocol.errors import ErrorCode

LEAVE_EPOCH: Final = -1
DEFAULT_SHARE_SESSION_TIMEOUT_MS: Final = 45_000
DEFAULT_SHARE_HEARTBEAT_INTERVAL_MS: Final = 5_000
MAX_MEMBER_ID_CHARS: Final = 36  # Kafka refuses longer ids (a UUID string is 22 or 36)


class ShareGroupError(Exception):
    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ShareGroupSettings:
    session_timeout_ms: int = DEFAULT_SHARE_SESSION_TIMEOUT_MS
    heartbeat_interval_ms: int = DEFAULT_SHARE_HEARTBEAT_INTERVAL_MS


@dataclass(slots=True)
class ShareMember:
    member_id: str
    subscription: tuple[str, ...]
    epoch: int = 0
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    assignment: Assignment = field(default_factory=dict)
    session_deadline_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ShareHeartbeatAnswer:
    member_id: str
    member_epoch: int
    heartbeat_interval_ms: int
    assignment: Assignment | None
    """None when unchanged since the member's last answer."""


class ShareGroup:
    def __init__(self, group_id: str, clock: Clock, settings: ShareGroupSettings) -> None:
        self.group_id = group_id
        self.clock = clock
        self.settings = settings
        self.members: dict[str, ShareMember] = {}
        self.group_epoch = 0
        self.assignment_epoch = 0
        self._partition_counts: dict[str, int] = {}

    @property
    def state(self) -> str:
        return "Empty" if not self.members else "Stable"

    def heartbeat(
        self,
        member_id: str,
        member_epoch: int,
        subscription: tuple[str, ...] | None,
        topics: Mapping[str, int],
        *,
        rack_id: str | None = None,
        client_id: str = "",
        client_host: str = "",
    ) -> ShareHeartbeatAnswer:
        _check(member_id, member_epoch, subscription)
        member = self.members.get(member_id)
        if member_epoch == LEAVE_EPOCH:
            if member is None:
                raise ShareGroupError(
                    ErrorCode.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of the group"
                )
            self.remove(member_id)
            return ShareHeartbeatAnswer(member_id, LEAVE_EPOCH, 0, None)
        if member is None:
            if member_epoch != 0:
                raise ShareGroupError(
                    ErrorCode.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of the group"
                )
            member = ShareMember(member_id, tuple(sorted(set(subscription or ()))))
            self.members[member_id] = member
            self.group_epoch += 1
        elif member_epoch not in (0, member.epoch):
            raise ShareGroupError(
                ErrorCode.FENCED_MEMBER_EPOCH,
                f"The share group member has a smaller member epoch ({member_epoch}) than the "
                f"one known by the group coordinator ({member.epoch}). The member must abandon "
                "all its partitions and rejoin.",
            )
        member.rack_id, member.client_id, member.client_host = rack_id, client_id, client_host
        member.session_deadline_ms = self.clock.monotonic_ms() + self.settings.session_timeout_ms
        if subscription is not None and tuple(sorted(set(subscription))) != member.subscription:
            member.subscription = tuple(sorted(set(subscription)))
            self.group_epoch += 1
        counts = {
            t: topics[t] for m in self.members.values() for t in m.subscription if t in topics
        }
        if counts != self._partition_counts:
            self._partition_counts = counts
            self.group_epoch += 1
        self._reassign()
        # The member moves to the assignment epoch when told (the epoch it may send next).
        member.epoch = self.assignment_epoch
        changed = member_epoch == 0 or member.epoch != member_epoch
        return ShareHeartbeatAnswer(
            member_id,
            member.epoch,
            self.settings.heartbeat_interval_ms,
            dict(member.assignment) if changed else None,
        )

    def remove(self, member_id: str) -> None:
        if self.members.pop(member_id, None) is not None:
            self.group_epoch += 1
            self._reassign()

    def expire_sessions(self) -> list[str]:
        """Members past their session deadline, removed; the caller releases their records."""
        now = self.clock.monotonic_ms()
        gone = [m.member_id for m in self.members.values() if m.session_deadline_ms <= now]
        for member_id in gone:
            self.remove(member_id)
        return gone

    def _reassign(self) -> None:
        if self.assignment_epoch == self.group_epoch:
            return
        target = simple_assign(
            {m.member_id: m.subscription for m in self.members.values()},
            self._partition_counts,
            {m.member_id: m.assignment for m in self.members.values()},
        )
        self.assignment_epoch = self.group_epoch
        for member in self.members.values():
            # No revocation step: a share member holds no partition exclusively.
            member.assignment = target.get(member.member_id, {})


def _check(member_id: str, member_epoch: int, subscription: tuple[str, ...] | None) -> None:
    """The request checks of Kafka 4.4's ShareGroupHeartbeat, with its messages."""
    if not member_id:
        raise ShareGroupError(ErrorCode.INVALID_REQUEST, "MemberId can't be empty.")
    if len(member_id) > MAX_MEMBER_ID_CHARS:
        raise ShareGroupError(
            ErrorCode.INVALID_REQUEST,
            f"MemberId can't be longer than {MAX_MEMBER_ID_CHARS} characters.",
        )
    if member_epoch < LEAVE_EPOCH:
        raise ShareGroupError(ErrorCode.INVALID_REQUEST, "MemberEpoch is invalid.")
    if member_epoch == 0 and not subscription:
        raise ShareGroupError(
            ErrorCode.INVALID_REQUEST,
            "SubscribedTopicNames must be set in first request.",
        )
