"""Every consumer group of the broker and their committed offsets.

Holds the :class:`~shoal.coordinator.group.Group` machines, validates what Kafka validates
before a group sees a request (group id, session timeout bounds), keeps committed offsets and
writes every change to the ``__consumer_offsets`` log (:mod:`shoal.coordinator.offsets_log`),
from which it is rebuilt at start: groups come back Empty with their generation and protocol
type, offsets exactly as last committed. Members are not persisted: after a restart they get
UNKNOWN_MEMBER_ID and rejoin, which every client handles.

Time: :meth:`next_deadline_ms` is when :meth:`advance` next has work; the broker arms one
timer for it. Nothing here waits: durability is returned as a future for the caller to await.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass

from shoal.clock import Clock
from shoal.coordinator.consumer_protocol import subscribed_topics
from shoal.coordinator.group import (
    Group,
    JoinCallback,
    JoinRequest,
    JoinResult,
    LeaveOutcome,
    SyncCallback,
    SyncResult,
)
from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.group_state import GroupState
from shoal.coordinator.offsets_log import (
    CommittedOffset,
    Entry,
    GroupRecord,
    OffsetsLog,
    TopicPartitionKey,
    group_key,
    group_value,
    offset_key,
    offset_value,
)
from shoal.coordinator.txn_offsets import PendingTxnOffsets, txn_end_entry
from shoal.protocol.errors import ErrorCode
from shoal.storage import StorageError

log = logging.getLogger(__name__)

GROUP_ID_LENGTH_MAX = 32_767
"""A group id is a Kafka string: its length is an int16."""
CONSUMER_PROTOCOL = "consumer"


@dataclass(frozen=True, slots=True)
class PendingSnapshot:
    durable: Future[None]
    first_offset: int


class GroupCoordinator:
    def __init__(
        self,
        clock: Clock,
        config: GroupConfig | None = None,
        offsets_log: OffsetsLog | None = None,
        *,
        new_member_id: Callable[[str], str] | None = None,
    ) -> None:
        self.clock = clock
        self.config = config or GroupConfig()
        self.offsets_log = offsets_log
        self._new_member_id = new_member_id
        self.groups: dict[str, Group] = {}
        self.offsets: dict[str, dict[TopicPartitionKey, CommittedOffset]] = {}
        # Transactional offset commits (issue 14, transactions slice).
        self.txn_offsets = PendingTxnOffsets()
        if offsets_log is not None:
            self._load(offsets_log)

    def _load(self, offsets_log: OffsetsLog) -> None:
        state = offsets_log.replay()
        self.offsets = state.offsets
        self.txn_offsets.by_producer = state.pending
        for group_id, record in state.groups.items():
            group = self._new_group(group_id)
            group.protocol_type = record.protocol_type
            group.generation_id = record.generation_id
        for group_id in state.offsets:
            if group_id not in self.groups:
                self._new_group(group_id)
        log.info(
            "loaded %d groups and %d committed offsets from %s",
            len(self.groups),
            sum(len(o) for o in self.offsets.values()),
            offsets_log.plog.name,
        )

    def _new_group(self, group_id: str) -> Group:
        group = Group(group_id, self.clock, self.config)
        if self._new_member_id is not None:
            group.new_member_id = self._new_member_id
        self.groups[group_id] = group
        return group

    def group(self, group_id: str) -> Group | None:
        return self.groups.get(group_id)

    # -- membership -----------------------------------------------------------------------

    def join(self, group_id: str, request: JoinRequest, respond: JoinCallback) -> None:
        error = self._check_group_id(group_id)
        timeout = request.session_timeout_ms
        if error is ErrorCode.NONE and not (
            self.config.min_session_timeout_ms <= timeout <= self.config.max_session_timeout_ms
        ):
            error = ErrorCode.INVALID_SESSION_TIMEOUT
        if error is not ErrorCode.NONE:
            respond(JoinResult(error, request.member_id))
            return
        group = self.groups.get(group_id)
        if group is None:
            if request.member_id:
                # A member of a group this broker does not know (e.g. after a restart).
                respond(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, request.member_id))
                return
            group = self._new_group(group_id)
        group.join(request, respond)
        self._persist_metadata()

    def sync(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        assignments: dict[str, bytes],
        respond: SyncCallback,
        *,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> None:
        group = self.groups.get(group_id)
        if group is None:
            error = self._check_group_id(group_id)
            respond(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID if not error else error))
            return
        group.sync(
            member_id,
            group_instance_id,
            generation_id,
            assignments,
            respond,
            protocol_type=protocol_type,
            protocol_name=protocol_name,
        )
        self._persist_metadata()

    def heartbeat(
        self, group_id: str, member_id: str, group_instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        group = self.groups.get(group_id)
        if group is None:
            error = self._check_group_id(group_id)
            return ErrorCode.UNKNOWN_MEMBER_ID if not error else error
        return group.heartbeat(member_id, group_instance_id, generation_id)

    def leave(
        self, group_id: str, leaving: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[LeaveOutcome]]:
        group = self.groups.get(group_id)
        if group is None:
            error = self._check_group_id(group_id)
            if error is ErrorCode.NONE:
                error = ErrorCode.UNKNOWN_MEMBER_ID
            return error, [LeaveOutcome(m, i, ErrorCode.UNKNOWN_MEMBER_ID) for m, i in leaving]
        outcomes = group.leave(leaving)
        self._persist_metadata()
        return ErrorCode.NONE, outcomes

    def _check_group_id(self, group_id: str | None) -> ErrorCode:
        if not group_id or len(group_id) > GROUP_ID_LENGTH_MAX:
            return ErrorCode.INVALID_GROUP_ID
        return ErrorCode.NONE

    def shutdown(self) -> None:
        """Answer every parked JoinGroup/SyncGroup with NOT_COORDINATOR (the broker stops):
        clients look the coordinator up again and rejoin once it is back."""
        for group in self.groups.values():
            for member in group.members.values():
                if member.awaiting_join is not None:
                    join, member.awaiting_join = member.awaiting_join, None
                    join(JoinResult(ErrorCode.NOT_COORDINATOR, member.member_id))
                if member.awaiting_sync is not None:
                    sync, member.awaiting_sync = member.awaiting_sync, None
                    sync(SyncResult(ErrorCode.NOT_COORDINATOR))

    # -- timers ---------------------------------------------------------------------------

    def next_deadline_ms(self) -> float | None:
        deadlines = [d for g in self.groups.values() if (d := g.next_deadline_ms()) is not None]
        return min(deadlines, default=None)

    def advance(self) -> None:
        """Act on every timer that has run out (call when :meth:`next_deadline_ms` passed)."""
        now = self.clock.monotonic_ms()
        for group in list(self.groups.values()):
            deadline = group.next_deadline_ms()
            if deadline is not None and deadline <= now:
                group.expire()
        self._persist_metadata()

    # -- offsets --------------------------------------------------------------------------

    def commit_offsets(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        offsets: dict[TopicPartitionKey, CommittedOffset],
    ) -> tuple[ErrorCode, dict[TopicPartitionKey, ErrorCode], Future[None] | None]:
        """Check and store commits; returns the group error, per-partition errors (metadata
        too large), and the future of durability of what was written."""
        error = self._check_group_id(group_id)
        group = self.groups.get(group_id)
        if error is ErrorCode.NONE:
            if group is None:
                # A group that exists only to store offsets ("simple" commits, generation -1).
                if generation_id >= 0:
                    error = ErrorCode.ILLEGAL_GENERATION
            else:
                error = group.check_commit(member_id, group_instance_id, generation_id)
        if error is not ErrorCode.NONE:
            return error, {}, None
        errors: dict[TopicPartitionKey, ErrorCode] = {}
        accepted: dict[TopicPartitionKey, CommittedOffset] = {}
        for tp, committed in offsets.items():
            if len(committed.metadata.encode()) > self.config.offset_metadata_max_bytes:
                errors[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                accepted[tp] = committed
        durable = self._write(
            [(offset_key(group_id, t, p), offset_value(c)) for (t, p), c in accepted.items()]
        )
        if group is None:
            self._new_group(group_id)
        self.offsets.setdefault(group_id, {}).update(accepted)
        return ErrorCode.NONE, errors, durable

    # -- transactional offsets (issue 14, transactions slice) --------------------------------

    def txn_commit_offsets(
        self,
        group_id: str,
        producer_id: int,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        offsets: dict[TopicPartitionKey, CommittedOffset],
    ) -> tuple[ErrorCode, dict[TopicPartitionKey, ErrorCode], Future[None] | None]:
        """Log offsets committed inside ``producer_id``'s transaction as pending (see
        :mod:`shoal.coordinator.txn_offsets`). A member id (KIP-447) is checked against the
        group as OffsetCommit checks it; without one (generation -1) the commit is not tied
        to a generation."""
        error = self._check_group_id(group_id)
        group = self.groups.get(group_id)
        if error is ErrorCode.NONE and group is not None and member_id:
            error = group.check_commit(member_id, group_instance_id, generation_id)
        if error is not ErrorCode.NONE:
            return error, {}, None
        errors: dict[TopicPartitionKey, ErrorCode] = {}
        accepted: dict[TopicPartitionKey, CommittedOffset] = {}
        for tp, committed in offsets.items():
            if len(committed.metadata.encode()) > self.config.offset_metadata_max_bytes:
                errors[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                accepted[tp] = committed
        if group is None:
            self._new_group(group_id)
        durable = self._write(self.txn_offsets.add(producer_id, group_id, accepted))
        return ErrorCode.NONE, errors, durable

    def end_txn_offsets(self, producer_id: int, commit: bool) -> Future[None] | None:
        """The transaction of ``producer_id`` ended: its pending offsets become committed
        (commit) or are dropped (abort). Returns the durability of the logged end."""
        if not self.txn_offsets.by_producer.get(producer_id):
            return None
        # Logged first: if the write fails, the offsets stay pending for the retry.
        durable = self._write([txn_end_entry(producer_id, commit)])
        ended = self.txn_offsets.end(producer_id)
        if commit:
            for (group_id, tp), committed in ended.items():
                self.offsets.setdefault(group_id, {})[tp] = committed
        return durable

    def fetch_offsets(
        self, group_id: str, partitions: Iterable[TopicPartitionKey] | None
    ) -> dict[TopicPartitionKey, CommittedOffset | None]:
        """Committed offsets of the partitions asked for (all when None); None if none."""
        committed = self.offsets.get(group_id, {})
        if partitions is None:
            return dict(sorted(committed.items()))
        return {tp: committed.get(tp) for tp in partitions}

    def delete_offsets(
        self, group_id: str, partitions: list[TopicPartitionKey]
    ) -> tuple[ErrorCode, dict[TopicPartitionKey, ErrorCode]]:
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            error = self._check_group_id(group_id)
            return (ErrorCode.GROUP_ID_NOT_FOUND if not error else error), {}
        if group.protocol_type not in (None, CONSUMER_PROTOCOL) and group.members:
            return ErrorCode.NON_EMPTY_GROUP, {}
        subscribed: set[str] = set()
        for member in group.members.values():
            subscribed |= subscribed_topics(member.metadata_for(group.protocol_name))
        errors: dict[TopicPartitionKey, ErrorCode] = {}
        doomed: list[TopicPartitionKey] = []
        committed = self.offsets.get(group_id, {})
        for tp in partitions:
            if tp[0] in subscribed:
                errors[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
            else:
                errors[tp] = ErrorCode.NONE
                if tp in committed:
                    doomed.append(tp)
        self._write([(offset_key(group_id, t, p), None) for t, p in doomed])
        for tp in doomed:
            del committed[tp]
        return ErrorCode.NONE, errors

    # -- admin ----------------------------------------------------------------------------

    def list_groups(self, states: set[GroupState] | None = None) -> list[Group]:
        return [
            g
            for _, g in sorted(self.groups.items())
            if g.state is not GroupState.DEAD and (not states or g.state in states)
        ]

    def delete_group(self, group_id: str) -> ErrorCode:
        error = self._check_group_id(group_id)
        if error is not ErrorCode.NONE:
            return error
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if group.state is not GroupState.EMPTY or not group.is_empty:
            return ErrorCode.NON_EMPTY_GROUP
        committed = self.offsets.get(group_id, {})
        entries: list[Entry] = [(offset_key(group_id, t, p), None) for t, p in committed]
        entries.append((group_key(group_id), None))
        self._write(entries)
        group.mark_dead()
        del self.groups[group_id]
        self.offsets.pop(group_id, None)
        return ErrorCode.NONE

    # -- persistence ----------------------------------------------------------------------

    def _write(self, entries: list[Entry]) -> Future[None] | None:
        if self.offsets_log is None or not entries:
            return None
        return self.offsets_log.append(entries)

    def _persist_metadata(self) -> None:
        entries: list[Entry] = []
        for group in self.groups.values():
            if group.metadata_changed and group.state is not GroupState.DEAD:
                group.metadata_changed = False
                record = GroupRecord(group.protocol_type, group.generation_id, group.protocol_name)
                entries.append((group_key(group.group_id), group_value(record)))
        try:
            self._write(entries)
        except StorageError as exc:
            # Group metadata only speeds up a restart (generations keep counting up); the
            # offsets, which matter, fail their own commit loudly.
            log.error("could not write group metadata to the offsets log: %s", exc)

    def snapshot_entries(self) -> list[Entry]:
        entries: list[Entry] = []
        for group in self.groups.values():
            record = GroupRecord(group.protocol_type, group.generation_id, group.protocol_name)
            entries.append((group_key(group.group_id), group_value(record)))
        for group_id, committed in self.offsets.items():
            entries.extend(
                (offset_key(group_id, t, p), offset_value(c)) for (t, p), c in committed.items()
            )
        entries.extend(self.txn_offsets.entries())
        return entries

    def maybe_snapshot(self) -> PendingSnapshot | None:
        """Write a snapshot of the whole state if the log has grown enough; the caller awaits
        its durability and then calls ``offsets_log.finish_snapshot(first_offset)``."""
        if self.offsets_log is None or not self.offsets_log.snapshot_due():
            return None
        written = self.offsets_log.write_snapshot(self.snapshot_entries())
        if written is None:
            return None
        return PendingSnapshot(*written)
