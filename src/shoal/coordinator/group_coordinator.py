"""Every consumer group of the broker and their committed offsets.

Holds the :class:`~shoal.coordinator.group.Group` machines, validates what Kafka validates
before a group sees a request (group id, session timeout bounds), keeps committed offsets and
writes every change to the ``__consumer_offsets`` log (:mod:`shoal.coordinator.offsets_log`),
from which it is rebuilt at start: groups come back Empty with their generation and protocol
type, offsets exactly as last committed. Classic members are not persisted: after a restart
they get UNKNOWN_MEMBER_ID and rejoin, which every client handles. KIP-848 consumer groups
(:mod:`shoal.coordinator.consumer_group`) are persisted whole, members, epochs and assignments
(:mod:`shoal.coordinator.consumer_group_record`), so their members carry on after a restart.

Time: :meth:`next_deadline_ms` is when :meth:`advance` next has work; the broker arms one
timer for it. Nothing here waits: durability is returned as a future for the caller to await.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from shoal.clock import Clock
from shoal.coordinator.consumer_group import (
    LEAVE_EPOCH,
    OFFSET_COMMIT_EPOCH_VERSION,
    STATIC_LEAVE_EPOCH,
    ConsumerGroup,
    ConsumerGroupError,
    ConsumerGroupSettings,
    ConsumerHeartbeat,
    HeartbeatAnswer,
)
from shoal.coordinator.consumer_group_record import group_document, group_from_document
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
from shoal.coordinator.group_configs import (
    HEARTBEAT_INTERVAL,
    SESSION_TIMEOUT,
    effective,
    validate_group_configs,
)
from shoal.coordinator.group_state import GroupState
from shoal.coordinator.mixed_group import (
    MigrationPolicy,
    can_downgrade,
    can_upgrade,
    classic_heartbeat,
    classic_join,
    classic_leave,
    classic_sync,
    convert_classic,
    convert_consumer,
    parse_policy,
)
from shoal.coordinator.offsets_log import (
    RECORDS_PER_BATCH_MAX,
    CommittedOffset,
    Entry,
    GroupRecord,
    OffsetsLog,
    TopicPartitionKey,
    consumer_group_key,
    consumer_group_value,
    group_config_key,
    group_config_value,
    group_key,
    group_value,
    offset_key,
    offset_value,
)
from shoal.coordinator.txn_offsets import PendingTxnOffsets
from shoal.protocol.errors import ErrorCode
from shoal.storage import StorageError

log = logging.getLogger(__name__)


def _uuid_member_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


GROUP_ID_LENGTH_MAX = 32_767
"""A group id is a Kafka string: its length is an int16."""
CONSUMER_PROTOCOL = "consumer"
COMMIT_VERSION_MAX = 10
"""The newest OffsetCommit version: what a caller that does not say is taken to speak."""


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
        self.topics: Callable[[], Mapping[str, int]] = dict
        """Every topic with its partition count: what KIP-848 subscriptions resolve against
        (the broker sets it; a classic member joining a consumer group needs it)."""
        self.group_configs: dict[str, dict[str, str]] = {}
        """Per-group overrides (the GROUP config resource), by group id."""
        self.consumer_groups: dict[str, ConsumerGroup] = {}
        """KIP-848 groups by id; a group id is in this or in ``groups``, never both."""
        self._group_writes: dict[str, Future[None]] = {}
        """Each consumer group's last write to the offsets log: heartbeats that change nothing
        wait for it, and one that failed to become durable is written again."""
        self._written_documents: dict[str, Mapping[str, Any]] = {}
        """Each consumer group as last handed to the offsets log: what a heartbeat whose own
        write failed puts back (Kafka reverts its in-memory state to the last written one)."""
        self.offsets: dict[str, dict[TopicPartitionKey, CommittedOffset]] = {}
        # Transactional offset commits (issue 14, transactions slice).
        self.txn_offsets = PendingTxnOffsets()
        if offsets_log is not None:
            self._load(offsets_log)

    def _load(self, offsets_log: OffsetsLog) -> None:
        state = offsets_log.replay()
        self.offsets = state.offsets
        self.txn_offsets.by_producer = state.pending
        self.txn_offsets.epochs = state.pending_epochs
        for group_id, record in state.groups.items():
            group = self._new_group(group_id)
            group.protocol_type = record.protocol_type
            group.generation_id = record.generation_id
        self.group_configs = state.group_configs
        for group_id, document in state.consumer_groups.items():
            try:
                consumer_group = group_from_document(
                    group_id, document, self.clock, self.consumer_settings(group_id)
                )
            except (KeyError, ValueError, TypeError) as exc:
                log.error("skipping the unreadable consumer group %s: %s", group_id, exc)
                continue
            self.consumer_groups[group_id] = consumer_group
            self._written_documents[group_id] = document
            self.groups.pop(group_id, None)  # a consumer group replaced the classic one
        for group_id in state.offsets:
            if group_id not in self.groups and group_id not in self.consumer_groups:
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
        consumer_group = self.consumer_groups.get(group_id)
        if consumer_group is not None:
            if not consumer_group.is_empty:
                self._classic_join_consumer_group(consumer_group, request, respond)
                return
            self._drop_consumer_group(group_id)
            self._write_persisting_errors([(consumer_group_key(group_id), None)])
        group = self.groups.get(group_id)
        if group is None:
            if request.member_id:
                # A member of a group this broker does not know (e.g. after a restart).
                respond(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, request.member_id))
                return
            group = self._new_group(group_id)
        group.join(request, respond)
        self._persist_metadata()

    def _classic_join_consumer_group(
        self, group: ConsumerGroup, request: JoinRequest, respond: JoinCallback
    ) -> None:
        """A classic member joins a KIP-848 group (mixed_group)."""
        new_member = request.member_id == ""
        member_id = request.member_id
        if new_member:
            member_id = (self._new_member_id or _uuid_member_id)(
                request.group_instance_id or request.client_id or "member"
            )
            if request.group_instance_id is None and request.require_known_member_id:
                respond(JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id))
                return
        elif member_id not in group.members:
            # The rejoin after MEMBER_ID_REQUIRED: a new member with the id it was given.
            new_member = True
        try:
            result = classic_join(group, request, member_id, self.topics(), new_member=new_member)
        finally:
            self._persist_consumer_groups()
        respond(result)

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
        consumer_group = self.consumer_groups.get(group_id)
        if consumer_group is not None:
            respond(
                classic_sync(
                    consumer_group,
                    member_id,
                    group_instance_id,
                    generation_id,
                    protocol_type,
                    protocol_name,
                )
            )
            return
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
        consumer_group = self.consumer_groups.get(group_id)
        if consumer_group is not None:
            return classic_heartbeat(consumer_group, member_id, group_instance_id, generation_id)
        group = self.groups.get(group_id)
        if group is None:
            error = self._check_group_id(group_id)
            return ErrorCode.UNKNOWN_MEMBER_ID if not error else error
        return group.heartbeat(member_id, group_instance_id, generation_id)

    def leave(
        self, group_id: str, leaving: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[LeaveOutcome]]:
        consumer_group = self.consumer_groups.get(group_id)
        if consumer_group is not None:
            try:
                return ErrorCode.NONE, classic_leave(consumer_group, leaving)
            finally:
                self._persist_consumer_groups()
        group = self.groups.get(group_id)
        if group is None:
            error = self._check_group_id(group_id)
            if error is ErrorCode.NONE:
                error = ErrorCode.UNKNOWN_MEMBER_ID
            return error, [LeaveOutcome(m, i, ErrorCode.UNKNOWN_MEMBER_ID) for m, i in leaving]
        outcomes = group.leave(leaving)
        self._persist_metadata()
        return ErrorCode.NONE, outcomes

    # -- KIP-848 consumer groups ----------------------------------------------------------

    @property
    def migration_policy(self) -> MigrationPolicy:
        return parse_policy(self.config.consumer_migration_policy) or MigrationPolicy.DISABLED

    def set_group_configs(
        self, group_id: str, configs: Mapping[str, str], *, validate_only: bool = False
    ) -> None:
        """Replace the group's config overrides (raises GroupConfigError, changing nothing).
        A live consumer group uses them from its next heartbeat on."""
        checked = validate_group_configs(configs, self.config)
        if validate_only:
            return
        self._write(
            [(group_config_key(group_id), group_config_value(checked) if checked else None)]
        )
        if checked:
            self.group_configs[group_id] = checked
        else:
            self.group_configs.pop(group_id, None)
        group = self.consumer_groups.get(group_id)
        if group is not None:
            group.settings = self.consumer_settings(group_id)

    def consumer_settings(self, group_id: str) -> ConsumerGroupSettings:
        values = effective(self.group_configs.get(group_id, {}), self.config)
        return ConsumerGroupSettings(
            session_timeout_ms=values[SESSION_TIMEOUT],
            heartbeat_interval_ms=values[HEARTBEAT_INTERVAL],
            assignors=self.config.consumer_assignors,
            max_size=self.config.consumer_max_size,
        )

    def consumer_heartbeat(
        self, group_id: str, request: ConsumerHeartbeat, topics: Mapping[str, int]
    ) -> HeartbeatAnswer:
        """As :meth:`consumer_heartbeat_durably`, without waiting for the write."""
        return self.consumer_heartbeat_durably(group_id, request, topics)[0]

    def consumer_heartbeat_durably(
        self, group_id: str, request: ConsumerHeartbeat, topics: Mapping[str, int]
    ) -> tuple[HeartbeatAnswer, Future[None] | None]:
        """A (checked) ConsumerGroupHeartbeat; ``topics``: every topic a subscription may
        name, with its partition count. Raises ConsumerGroupError."""
        if request.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            group = self.consumer_groups.get(group_id)
            if group is None:
                raise ConsumerGroupError(
                    ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found."
                )
            try:
                answer = group.leave(request.member_id, request.instance_id, request.member_epoch)
            finally:
                self._maybe_downgrade(group)
                durable = self._persist_heartbeat(group_id)
            return answer, durable
        group = self._consumer_group_for(group_id, joining=request.member_epoch == 0)
        try:
            answer = group.heartbeat(request, topics)
        finally:
            durable = self._persist_heartbeat(group_id)
        return answer, durable

    def _drop_consumer_group(self, group_id: str) -> None:
        del self.consumer_groups[group_id]
        self._written_documents.pop(group_id, None)
        self._group_writes.pop(group_id, None)

    def _persist_heartbeat(self, group_id: str) -> Future[None] | None:
        """Write what a heartbeat changed. If the write fails, no member may be told an epoch
        or an assignment a restart would forget: the group is put back as it was last written
        (or removed, if it never was) and the heartbeat fails with NOT_COORDINATOR, Kafka's
        answer when a coordinator's write hits a storage error; the member retries as it was.

        A heartbeat that changed nothing waits for the group's last write all the same, as
        Kafka defers a read behind pending writes: its answer repeats state that may not be
        durable yet. A last write that failed to become durable is written again (the whole
        group) before anything more is answered."""
        group = self.consumer_groups.get(group_id)
        last = self._group_writes.get(group_id)
        if (
            group is not None
            and last is not None
            and last.done()
            and (last.cancelled() or last.exception() is not None)
        ):
            group.changed = True
        try:
            durable = self._persist_consumer_groups(raising=True)
            if durable is None and last is not None and not last.done():
                return last
            return durable
        except StorageError as exc:
            document = self._written_documents.get(group_id)
            if document is None:
                self.consumer_groups.pop(group_id, None)
            else:
                restored = group_from_document(
                    group_id, document, self.clock, self.consumer_settings(group_id)
                )
                self.consumer_groups[group_id] = restored
            log.error("group %s: its state could not be written, reverted: %s", group_id, exc)
            raise ConsumerGroupError(
                ErrorCode.NOT_COORDINATOR, f"The group state could not be written: {exc}"
            ) from exc

    def _maybe_downgrade(self, group: ConsumerGroup) -> None:
        """The online downgrade (mixed_group): only classic members are left."""
        if not can_downgrade(group, self.migration_policy):
            return
        group_id = group.group_id
        self._drop_consumer_group(group_id)
        group.changed = False  # its record is deleted below, not rewritten
        self._write_persisting_errors([(consumer_group_key(group_id), None)])
        classic = self._new_group(group_id)
        convert_consumer(group, classic)
        log.info("group %s: downgraded to a classic group", group_id)
        self._persist_metadata()

    def _consumer_group_for(self, group_id: str, *, joining: bool) -> ConsumerGroup:
        group = self.consumer_groups.get(group_id)
        if group is not None:
            return group
        classic = self.groups.get(group_id)
        if classic is not None and classic.state is not GroupState.DEAD:
            settings = self.consumer_settings(group_id)
            empty = classic.state is GroupState.EMPTY and classic.is_empty
            if (
                joining
                and not empty
                and can_upgrade(classic, self.migration_policy, settings.max_size)
            ):
                # The online upgrade (mixed_group): the classic members stay, as classic
                # members of the consumer group.
                converted = convert_classic(classic, settings)
                classic.mark_dead()
                del self.groups[group_id]
                self._write_persisting_errors([(group_key(group_id), None)])
                self.consumer_groups[group_id] = converted
                log.info("group %s: upgraded from a classic group", group_id)
                return converted
            if not (joining and empty):
                raise ConsumerGroupError(
                    ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group."
                )
            # An empty classic group (e.g. one that only holds offsets) gives way; the
            # offsets stay, they belong to the group id.
            classic.mark_dead()
            del self.groups[group_id]
        elif not joining:
            raise ConsumerGroupError(
                ErrorCode.GROUP_ID_NOT_FOUND, f"Consumer group {group_id} not found."
            )
        group = ConsumerGroup(group_id, self.clock, self.consumer_settings(group_id))
        self.consumer_groups[group_id] = group
        return group

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
        deadlines += [
            d for g in self.consumer_groups.values() if (d := g.next_deadline_ms()) is not None
        ]
        return min(deadlines, default=None)

    def advance(self) -> None:
        """Act on every timer that has run out (call when :meth:`next_deadline_ms` passed)."""
        now = self.clock.monotonic_ms()
        for group in list(self.groups.values()):
            deadline = group.next_deadline_ms()
            if deadline is not None and deadline <= now:
                group.expire()
        for consumer_group in list(self.consumer_groups.values()):
            deadline = consumer_group.next_deadline_ms()
            if deadline is not None and deadline <= now:
                for member_id in consumer_group.expire():
                    log.info(
                        "group %s: member %s fenced (timeout)", consumer_group.group_id, member_id
                    )
                self._maybe_downgrade(consumer_group)
        self._persist_metadata()
        self._persist_consumer_groups()

    # -- offsets --------------------------------------------------------------------------

    def commit_offsets(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        offsets: dict[TopicPartitionKey, CommittedOffset],
        api_version: int = COMMIT_VERSION_MAX,
    ) -> tuple[ErrorCode, dict[TopicPartitionKey, ErrorCode], Future[None] | None]:
        """Check and store commits; returns the group error, per-partition errors (metadata
        too large), and the future of durability of what was written."""
        error = self._commit_verdict(
            group_id, member_id, group_instance_id, generation_id, offsets, api_version
        )
        if error is not ErrorCode.NONE:
            return error, {}, None
        accepted, errors = self._within_metadata_limit(offsets)
        durable = self._write(
            [(offset_key(group_id, t, p), offset_value(c)) for (t, p), c in accepted.items()]
        )
        if group_id not in self.groups and group_id not in self.consumer_groups:
            self._new_group(group_id)
        self.offsets.setdefault(group_id, {}).update(accepted)
        return ErrorCode.NONE, errors, durable

    def _commit_verdict(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        partitions: Iterable[TopicPartitionKey],
        api_version: int | None,
    ) -> ErrorCode:
        """May this member commit offsets of ``group_id``? One rule for OffsetCommit
        (``api_version`` its version) and TxnOffsetCommit (None), as Kafka's
        validateOffsetCommit and validateTransactionalOffsetCommit share theirs.

        A group that does not exist takes only commits without a generation (-1: an admin, or
        a consumer outside group management), which create a "simple" group to hold them;
        others get GROUP_ID_NOT_FOUND from OffsetCommit v9+, ILLEGAL_GENERATION before. A
        TxnOffsetCommit needs no member fields (v0-2 have none, and a producer may be given
        no group metadata): they are checked only when one is given. TxnOffsetCommit has no
        STALE_MEMBER_EPOCH: a KIP-848 member's stale epoch is ILLEGAL_GENERATION there, as in
        Kafka, which producers treat as abortable."""
        error = self._check_group_id(group_id)
        if error is not ErrorCode.NONE:
            return error
        transactional = api_version is None
        no_member_fields = generation_id == -1 and not member_id and group_instance_id is None
        consumer_group = self.consumer_groups.get(group_id)
        if consumer_group is not None:
            if transactional and no_member_fields:
                return ErrorCode.NONE
            error = consumer_group.check_commit(member_id, generation_id, api_version, partitions)
            if transactional and error is ErrorCode.STALE_MEMBER_EPOCH:
                return ErrorCode.ILLEGAL_GENERATION
            return error
        group = self.groups.get(group_id)
        if group is None:
            if generation_id < 0:
                return ErrorCode.NONE
            # OffsetCommit v9+ says the group is not there (the answer both protocols' clients
            # understand); older versions and TxnOffsetCommit keep ILLEGAL_GENERATION.
            if api_version is not None and api_version >= OFFSET_COMMIT_EPOCH_VERSION:
                return ErrorCode.GROUP_ID_NOT_FOUND
            return ErrorCode.ILLEGAL_GENERATION
        return group.check_commit(
            member_id, group_instance_id, generation_id, transactional=transactional
        )

    def _within_metadata_limit(
        self, offsets: dict[TopicPartitionKey, CommittedOffset]
    ) -> tuple[dict[TopicPartitionKey, CommittedOffset], dict[TopicPartitionKey, ErrorCode]]:
        """The offsets whose metadata fits ``offset.metadata.max.bytes``, and
        OFFSET_METADATA_TOO_LARGE for each of the others (a commit, plain or transactional,
        stores the first and refuses only the second)."""
        errors: dict[TopicPartitionKey, ErrorCode] = {}
        accepted: dict[TopicPartitionKey, CommittedOffset] = {}
        for tp, committed in offsets.items():
            if len(committed.metadata.encode()) > self.config.offset_metadata_max_bytes:
                errors[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                accepted[tp] = committed
        return accepted, errors

    # -- transactional offsets (issue 14, transactions slice) --------------------------------

    def txn_commit_offsets(
        self,
        group_id: str,
        producer: tuple[int, int],
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        offsets: dict[TopicPartitionKey, CommittedOffset],
    ) -> tuple[ErrorCode, dict[TopicPartitionKey, ErrorCode], Future[None] | None]:
        """Log offsets committed inside ``producer_id``'s transaction as pending (see
        :mod:`shoal.coordinator.txn_offsets`). A member id (KIP-447) is checked against the
        group as OffsetCommit checks it; without one (generation -1) the commit is not tied
        to a generation. ``producer`` is (id, epoch); a batch refused as from an older epoch
        than the offsets partition's raises :class:`BatchRefused` and changes nothing. A
        failed write raises StorageError; the batches written before it stay pending."""
        error = self._commit_verdict(
            group_id, member_id, group_instance_id, generation_id, offsets, api_version=None
        )
        if error is not ErrorCode.NONE:
            return error, {}, None
        accepted, errors = self._within_metadata_limit(offsets)
        if group_id not in self.groups and group_id not in self.consumer_groups:
            self._new_group(group_id)
        # One batch at a time, each remembered once written: a write that fails part-way
        # (StorageError) leaves in memory exactly the batches in the log, which is what a
        # restart replays; the client's retry writes them all again.
        durable = None
        items = list(accepted.items())
        for start in range(0, len(items), RECORDS_PER_BATCH_MAX):
            chunk = dict(items[start : start + RECORDS_PER_BATCH_MAX])
            if self.offsets_log is not None:
                written = self.offsets_log.append(
                    PendingTxnOffsets.entries_for(producer[0], group_id, chunk), producer
                )
                durable = durable if written is None else written
            self.txn_offsets.add(producer, group_id, chunk)
        return ErrorCode.NONE, errors, durable

    def end_txn_offsets(
        self, producer_id: int, producer_epoch: int, coordinator_epoch: int, commit: bool
    ) -> Future[None] | None:
        """The marker of ``producer_id``'s transaction for ``__consumer_offsets``: written
        (whether or not the producer has pending offsets, as Kafka writes it), then its
        pending offsets become committed (commit) or are dropped (abort). Returns the
        marker's durability. A marker the partition refuses (an older producer or
        coordinator epoch than its own for the producer) raises :class:`BatchRefused` and
        changes nothing, as does any other failed write (StorageError)."""
        durable = None
        if self.offsets_log is not None:
            durable = self.offsets_log.append_marker(
                producer_id, producer_epoch, coordinator_epoch, commit
            )
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
        subscribed: set[str] = set()
        consumer_group = self.consumer_groups.get(group_id)
        group = self.groups.get(group_id)
        if consumer_group is not None:
            # A KIP-848 group: the topics its members' subscriptions resolve to.
            topics = self.topics()
            for consumer in consumer_group.members.values():
                subscribed |= consumer_group.subscribed_topics(consumer, topics)
        elif group is None or group.state is GroupState.DEAD:
            error = self._check_group_id(group_id)
            return (ErrorCode.GROUP_ID_NOT_FOUND if not error else error), {}
        elif group.protocol_type not in (None, CONSUMER_PROTOCOL) and group.members:
            return ErrorCode.NON_EMPTY_GROUP, {}
        else:
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
        consumer_group = self.consumer_groups.get(group_id)
        if consumer_group is not None:
            if not consumer_group.is_empty:
                return ErrorCode.NON_EMPTY_GROUP
            doomed = [(offset_key(group_id, t, p), None) for t, p in self.offsets.get(group_id, {})]
            self._write([*doomed, (consumer_group_key(group_id), None)])
            self._drop_consumer_group(group_id)
            self.offsets.pop(group_id, None)
            return ErrorCode.NONE
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

    def _persist_consumer_groups(self, *, raising: bool = False) -> Future[None] | None:
        """Write every changed consumer group; the future of their durability, if any.
        ``raising``: a failed write raises StorageError (else it is logged); either way the
        groups stay marked changed, for the next write to try again."""
        changed = [group for group in self.consumer_groups.values() if group.changed]
        documents = {group.group_id: group_document(group) for group in changed}
        entries: list[Entry] = [
            (consumer_group_key(group_id), consumer_group_value(document))
            for group_id, document in documents.items()
        ]
        try:
            durable = self._write(entries)
        except StorageError as exc:
            if raising:
                raise
            log.error("could not write consumer group state to the offsets log: %s", exc)
            return None
        for group in changed:
            group.changed = False
            if durable is not None:
                self._group_writes[group.group_id] = durable
        self._written_documents.update(documents)
        return durable

    def _write_persisting_errors(self, entries: list[Entry]) -> Future[None] | None:
        try:
            return self._write(entries)
        except StorageError as exc:
            # Like classic group metadata: members and epochs only speed up a restart (a
            # member the broker forgot rejoins); offsets fail their own commit loudly.
            log.error("could not write consumer group state to the offsets log: %s", exc)
            return None

    def snapshot_entries(self) -> list[Entry]:
        entries: list[Entry] = [
            (consumer_group_key(g.group_id), consumer_group_value(group_document(g)))
            for g in self.consumer_groups.values()
        ]
        entries += [
            (group_config_key(group_id), group_config_value(configs))
            for group_id, configs in self.group_configs.items()
        ]
        for group in self.groups.values():
            record = GroupRecord(group.protocol_type, group.generation_id, group.protocol_name)
            entries.append((group_key(group.group_id), group_value(record)))
        for group_id, committed in self.offsets.items():
            entries.extend(
                (offset_key(group_id, t, p), offset_value(c)) for (t, p), c in committed.items()
            )
        return entries

    def maybe_snapshot(self) -> PendingSnapshot | None:
        """Write a snapshot of the whole state if the log has grown enough; the caller awaits
        its durability and then calls ``offsets_log.finish_snapshot(first_offset)``."""
        if self.offsets_log is None or not self.offsets_log.snapshot_due():
            return None
        written = self.offsets_log.write_snapshot(
            self.snapshot_entries(), self.txn_offsets.entries()
        )
        if written is None:
            return None
        return PendingSnapshot(*written)
