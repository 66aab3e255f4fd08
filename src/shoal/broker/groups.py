"""The group service: the one door from the handlers to the consumer groups.

Handlers call one method per API. Methods that change groups are ``async`` and do the whole
job: they act on the (pure, private) :class:`~shoal.coordinator.group_coordinator.
GroupCoordinator`, re-arm its timer, start a snapshot of the offsets log when one is due, and
turn storage failures into the Kafka error to answer. Read-only queries (OffsetFetch,
DescribeGroups, ListGroups, and the metrics) are plain methods: they change nothing and never
wait.

Waiting and the per-connection order (docs/connections.md): a method that waits for something
that is not an effect (JoinGroup for the rest of the group, SyncGroup for the leader's
assignment, OffsetCommit for its fsync) takes ``applied``, the request's
``RequestContext.effects_applied``, and calls it once the request's effects are applied and
before it waits, so the next request on the connection may start meanwhile. It calls it at
most once, and changes nothing after it.

Time: the coordinator's deadlines become one timer task. It sleeps until the next deadline or
until a request changes the groups (:meth:`_kick`), whichever comes first, then lets the
coordinator act on what has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from shoal.broker.durable import awaitable_durable
from shoal.clock import Clock
from shoal.coordinator.consumer_group import (
    ConsumerGroup,
    ConsumerGroupError,
    ConsumerHeartbeat,
    HeartbeatAnswer,
)
from shoal.coordinator.group import (
    Group,
    HeartbeatRequest,
    JoinRequest,
    JoinResult,
    LeaveOutcome,
    LeaveRequest,
    SyncRequest,
    SyncResult,
)
from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.group_coordinator import (
    COMMIT_VERSION_MAX,
    GroupCoordinator,
    PendingSnapshot,
)
from shoal.coordinator.group_state import GroupState
from shoal.coordinator.offsets_log import (
    EPOCH_REFUSALS,
    OFFSETS_TOPIC,
    BatchRefused,
    CommittedOffset,
    OffsetsLog,
    TopicPartitionKey,
    offsets_log_config,
)
from shoal.coordinator.producer_state import Duplicate, Rejected
from shoal.protocol.errors import ErrorCode
from shoal.records import read_header
from shoal.records.header import BatchHeader
from shoal.storage import AppendInfo, LogConfig, LogManager, PartitionLog, StorageError

log = logging.getLogger(__name__)

TIMER_SLEEP_S_MAX: Final = 60.0
TIMER_FAILURE_BACKOFF_S: Final = 1.0
"""After the coordinator's timer step raised: the next try waits at least this long (a step that
keeps failing left its deadline in the past, and the timer spun on it, logging each time)."""
"""The timer wakes at least this often even with no deadline: a cheap guard against a missed
kick leaving a timer unarmed for long."""
DURABLE_WAIT_S_MAX: Final = 30.0
"""How long a commit waits for its fsync before answering REQUEST_TIMED_OUT (the client
retries; Kafka's offsets.commit.timeout.ms is 5 s, but a loaded disk may need longer)."""

AppendOperation = Callable[
    [str, int, PartitionLog, bytes, BatchHeader], AppendInfo | Duplicate | Rejected
]
"""The broker's one append operation (:meth:`shoal.broker.broker.Broker.append`)."""
Applied = Callable[[], None]
"""A request's ``effects_applied``: called once, before a method waits."""


class GroupService:
    def __init__(
        self,
        logs: LogManager,
        base_config: LogConfig,
        clock: Clock,
        config: GroupConfig,
        append: AppendOperation,
    ) -> None:
        self.clock = clock
        log_config = offsets_log_config(base_config, config)
        plog = logs.get(OFFSETS_TOPIC, 0)
        if plog is None:
            plog = logs.create(OFFSETS_TOPIC, 0, log_config)
        else:
            plog.update_config(log_config)

        def write(batch: bytes) -> AppendInfo:
            # Through the broker's append: a Fetch parked on __consumer_offsets wakes too.
            result = append(OFFSETS_TOPIC, 0, plog, batch, read_header(batch))
            if isinstance(result, Rejected):
                if result.error_code in EPOCH_REFUSALS:  # a transaction's, from an older epoch
                    raise BatchRefused(result)
                # Anything else (the producer state could not be loaded) is a storage
                # failure: the caller's retriable answer, not this code as such.
                raise StorageError(result.message)
            if isinstance(result, Duplicate):  # pragma: no cover - sequences are not checked here
                raise StorageError(
                    f"{OFFSETS_TOPIC}: the coordinator's batch was taken for a retry"
                )
            return result

        self._offsets_log = OffsetsLog(plog, config, clock, write)
        self._coordinator = GroupCoordinator(clock, config, self._offsets_log)
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._snapshot_task: asyncio.Task[None] | None = None

    # -- membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) ---------------------------

    async def join(self, group_id: str, request: JoinRequest, applied: Applied) -> JoinResult:
        """Add the member to the group, then wait for the join phase to end."""
        future: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()

        def respond(result: JoinResult) -> None:
            if not future.done():  # the client may have gone away meanwhile
                future.set_result(result)

        self._coordinator.join(group_id, request, respond)
        self._changed()
        applied()
        return await future

    async def sync(self, group_id: str, request: SyncRequest, applied: Applied) -> SyncResult:
        """Hand the coordinator the member's sync, then wait for its assignment."""
        future: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()

        def respond(result: SyncResult) -> None:
            if not future.done():
                future.set_result(result)

        self._coordinator.sync(
            group_id,
            request.member_id,
            request.group_instance_id,
            request.generation_id,
            request.assignments,
            respond,
            protocol_type=request.protocol_type,
            protocol_name=request.protocol_name,
        )
        self._changed()
        applied()
        return await future

    async def heartbeat(self, group_id: str, request: HeartbeatRequest) -> ErrorCode:
        # Only moves the member's deadline later: the timer, when it wakes, sees the new one.
        return self._coordinator.heartbeat(
            group_id, request.member_id, request.group_instance_id, request.generation_id
        )

    async def leave(
        self, group_id: str, request: LeaveRequest
    ) -> tuple[ErrorCode, list[LeaveOutcome]]:
        """The group's error and one outcome per member asked to leave."""
        result = self._coordinator.leave(group_id, list(request.members))
        self._changed()
        return result

    # -- KIP-848 consumer groups (ConsumerGroupHeartbeat) ----------------------------------

    def group_configs(self, group_id: str) -> dict[str, str]:
        """The group's config overrides (the GROUP config resource)."""
        return dict(self._coordinator.group_configs.get(group_id, {}))

    def groups_with_configs(self) -> list[str]:
        """The ids of the groups that have config overrides, sorted."""
        return sorted(self._coordinator.group_configs)

    def set_group_configs(
        self, group_id: str, configs: Mapping[str, str], *, validate_only: bool = False
    ) -> None:
        """Replace the group's overrides; raises GroupConfigError (or StorageError)."""
        self._coordinator.set_group_configs(group_id, configs, validate_only=validate_only)
        self._changed()

    @property
    def base_config(self) -> GroupConfig:
        """The broker-wide group settings the per-group configs override."""
        return self._coordinator.config

    def use_topics(self, topics: Callable[[], Mapping[str, int]]) -> None:
        """Where subscriptions find topics and their partition counts (the broker's topics);
        a classic member joining a consumer group needs them."""
        self._coordinator.topics = topics

    @property
    def consumer_assignors(self) -> tuple[str, ...]:
        """group.consumer.assignors: the server-side assignors members may ask for."""
        return self._coordinator.config.consumer_assignors

    async def consumer_heartbeat(
        self,
        group_id: str,
        request: ConsumerHeartbeat,
        topics: Mapping[str, int],
        applied: Applied,
    ) -> HeartbeatAnswer:
        """Join, heartbeat or leave a consumer group; raises
        :class:`~shoal.coordinator.consumer_group.ConsumerGroupError` with Kafka's answer.

        A change of the group (an epoch, an assignment) is answered once its record in the
        offsets log is durable, as Kafka answers once its records are committed: a restart
        never forgets an epoch a member was told."""
        try:
            answer, durable = self._coordinator.consumer_heartbeat_durably(
                group_id, request, topics
            )
        finally:
            self._changed()
        if durable is None:
            return answer
        applied()
        try:
            # Shielded: a cancelled wait must not cancel the storage future the flusher completes.
            await asyncio.wait_for(asyncio.shield(awaitable_durable(durable)), DURABLE_WAIT_S_MAX)
        except TimeoutError as exc:
            # Not told: a restart could forget it. The member retries with the epoch it has,
            # which the group takes as its previous one (Kafka maps a coordinator write that
            # timed out to COORDINATOR_NOT_AVAILABLE).
            raise ConsumerGroupError(
                ErrorCode.COORDINATOR_NOT_AVAILABLE, "The group state was not made durable in time."
            ) from exc
        except StorageError as exc:
            log.error("state of group %s was not made durable: %r", group_id, exc)
            raise ConsumerGroupError(
                ErrorCode.NOT_COORDINATOR, f"The group state was not made durable: {exc}"
            ) from exc
        return answer

    def consumer_group(self, group_id: str) -> ConsumerGroup | None:
        """The KIP-848 group of that id, or None. Read it, do not change it."""
        return self._coordinator.consumer_groups.get(group_id)

    def consumer_groups(self) -> list[ConsumerGroup]:
        """Every KIP-848 group, by id. Read them, do not change them."""
        return [g for _, g in sorted(self._coordinator.consumer_groups.items())]

    def check_offset_fetch(
        self, group_id: str, member_id: str | None, member_epoch: int
    ) -> ErrorCode:
        """OffsetFetch v9+ from a member of a consumer group: is its epoch current?"""
        group = self._coordinator.consumer_groups.get(group_id)
        if group is None:
            return ErrorCode.NONE
        return group.check_fetch(member_id, member_epoch)

    # -- offsets (OffsetCommit, OffsetFetch, OffsetDelete) ----------------------------------

    async def commit_offsets(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        offsets: dict[TopicPartitionKey, CommittedOffset],
        applied: Applied,
        api_version: int = COMMIT_VERSION_MAX,
    ) -> tuple[ErrorCode, dict[TopicPartitionKey, ErrorCode]]:
        """Store the offsets (visible to OffsetFetch at once), then wait for their fsync.

        Returns the error of every partition not in the dict (NONE, or the group's, or the
        write's) and the partitions' own errors (metadata too large).
        """
        try:
            error, errors, durable = self._coordinator.commit_offsets(
                group_id, member_id, group_instance_id, generation_id, offsets, api_version
            )
        except StorageError as exc:
            log.error("could not write offsets of group %s: %s", group_id, exc)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, {}
        self._changed()
        if durable is None:
            return error, errors
        applied()
        try:
            # Shielded: a cancelled wait (timeout, client gone) must not cancel the storage
            # future itself, which the flusher thread still completes.
            await asyncio.wait_for(asyncio.shield(awaitable_durable(durable)), DURABLE_WAIT_S_MAX)
        except TimeoutError:
            error = ErrorCode.REQUEST_TIMED_OUT
        except StorageError as exc:
            log.error("offsets of group %s were not made durable: %s", group_id, exc)
            error = ErrorCode.COORDINATOR_NOT_AVAILABLE
        return error, errors

    # -- transactional offsets (issue 14, transactions slice) --------------------------------

    async def txn_commit_offsets(
        self,
        group_id: str,
        producer: tuple[int, int],
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        offsets: dict[TopicPartitionKey, CommittedOffset],
    ) -> tuple[ErrorCode, dict[TopicPartitionKey, ErrorCode]]:
        """Log the offsets as pending in the transaction of ``producer`` (id, epoch), then
        wait for the fsync. An epoch older than the offsets partition knows for the producer
        (an operator's marker of a newer epoch ended its transaction there) is refused as
        Kafka's partition refuses it, INVALID_PRODUCER_EPOCH, and nothing is written."""
        try:
            error, errors, durable = self._coordinator.txn_commit_offsets(
                group_id, producer, member_id, group_instance_id, generation_id, offsets
            )
        except BatchRefused as exc:
            return exc.refused.error_code, {}
        except StorageError as exc:
            log.error("could not write transactional offsets of group %s: %s", group_id, exc)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, {}
        self._changed()
        if durable is None:
            return error, errors
        try:
            await asyncio.wait_for(asyncio.shield(awaitable_durable(durable)), DURABLE_WAIT_S_MAX)
        except TimeoutError:
            error = ErrorCode.REQUEST_TIMED_OUT
        except StorageError as exc:
            log.error("transactional offsets of group %s not durable: %s", group_id, exc)
            error = ErrorCode.COORDINATOR_NOT_AVAILABLE
        return error, errors

    def end_txn_offsets(
        self, producer_id: int, producer_epoch: int, coordinator_epoch: int, commit: bool
    ) -> asyncio.Future[None] | None:
        """Write the transaction's marker to ``__consumer_offsets``, checked as every
        partition's marker is (the broker's append): its pending offset commits become
        committed or are dropped. Returns the fsync to wait for. Raises
        :class:`BatchRefused` for a marker of an older producer or coordinator epoch than
        the partition's (nothing written, the offsets stay pending), StorageError when the
        write fails."""
        durable = self._coordinator.end_txn_offsets(
            producer_id, producer_epoch, coordinator_epoch, commit
        )
        self._changed()
        return None if durable is None else awaitable_durable(durable)

    def has_pending_txn_offset(self, group_id: str, tp: TopicPartitionKey) -> bool:
        return self._coordinator.txn_offsets.is_pending(group_id, tp)

    def fetch_offsets(
        self, group_id: str, partitions: Iterable[TopicPartitionKey] | None
    ) -> dict[TopicPartitionKey, CommittedOffset | None]:
        """Committed offsets of the partitions asked for (all when None); None if none."""
        return self._coordinator.fetch_offsets(group_id, partitions)

    async def delete_offsets(
        self, group_id: str, partitions: list[TopicPartitionKey]
    ) -> tuple[ErrorCode, dict[TopicPartitionKey, ErrorCode]]:
        try:
            result = self._coordinator.delete_offsets(group_id, partitions)
        except StorageError as exc:
            log.error("could not delete offsets of group %s: %s", group_id, exc)
            result = ErrorCode.COORDINATOR_NOT_AVAILABLE, {}
        self._changed()
        return result

    # -- admin (DescribeGroups, ListGroups, DeleteGroups) and metrics -----------------------

    def describe(self, group_id: str) -> Group | None:
        """The group, or None if there is none (or it is dead). Read it, do not change it."""
        group = self._coordinator.group(group_id)
        if group is None or group.state is GroupState.DEAD:
            return None
        return group

    def list(self, states: set[GroupState] | None = None) -> list[Group]:
        """Every live group (in the given states, if any), by id. Read them, do not change
        them."""
        return self._coordinator.list_groups(states)

    async def delete(self, group_id: str) -> ErrorCode:
        """Delete an empty group and its offsets."""
        try:
            error = self._coordinator.delete_group(group_id)
        except StorageError as exc:
            log.error("could not delete group %s: %s", group_id, exc)
            error = ErrorCode.COORDINATOR_NOT_AVAILABLE
        self._changed()
        return error

    def committed_offsets(self) -> Mapping[str, Mapping[TopicPartitionKey, CommittedOffset]]:
        """Every group's committed offsets (for the metrics); read it, do not change it."""
        return self._coordinator.offsets

    # -- the timer ------------------------------------------------------------------------

    def _changed(self) -> None:
        """After any request that may have changed groups or written the offsets log."""
        self._kick()
        self._maybe_snapshot()

    def _kick(self) -> None:
        """Re-arm the timer (and start it on the first request)."""
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.ensure_future(self._run_timer())
        if self._wakeup is not None:
            self._wakeup.set()

    async def _run_timer(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:  # pragma: no cover - _kick() sets it before starting the task
            return
        failures = 0
        while True:
            deadline = self._coordinator.next_deadline_ms()
            timeout = TIMER_SLEEP_S_MAX
            if deadline is not None:
                timeout = min(timeout, max(0.0, (deadline - self.clock.monotonic_ms()) / 1000))
            if failures:
                timeout = max(timeout, TIMER_FAILURE_BACKOFF_S)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # arrives as the wakeup fires (a request just before stop()), and stop() then
            # waited for this task forever (issue 21, docs slice: a broker that never exited).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wakeup.wait()
            wakeup.clear()
            try:
                self._coordinator.advance()
                self._maybe_snapshot()
            except Exception:
                # A bug in the coordinator must not silently stop every group's timers; the
                # traceback is logged once per run of failures, not at every retry.
                failures += 1
                if failures == 1:
                    log.exception(
                        "group coordinator timer failed (retried every %.1f s)",
                        TIMER_FAILURE_BACKOFF_S,
                    )
            else:
                if failures:
                    log.warning("group coordinator timer recovered after %d failures", failures)
                failures = 0

    async def stop(self) -> None:
        """Stop the timer and answer every parked JoinGroup/SyncGroup (NOT_COORDINATOR), so
        in-flight requests drain. Call before the connections are closed."""
        self._coordinator.shutdown()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def drain(self) -> None:
        """Let a snapshot of the offsets log in progress finish (its fsync and the deletion
        before it): call after the last request, before the logs close."""
        if self._snapshot_task is not None:
            await self._snapshot_task

    # -- snapshots of the offsets log -----------------------------------------------------

    def _maybe_snapshot(self) -> None:
        """Start a snapshot of the offsets log if it has grown enough (see offsets_log)."""
        if self._snapshot_task is not None and not self._snapshot_task.done():
            return
        try:
            pending = self._coordinator.maybe_snapshot()
        except StorageError as exc:
            # Not fatal: the log keeps its older records and the next write tries again.
            log.error("could not write a snapshot of %s: %s", OFFSETS_TOPIC, exc)
            return
        if pending is not None:
            self._snapshot_task = asyncio.ensure_future(self._finish_snapshot(pending))

    async def _finish_snapshot(self, pending: PendingSnapshot) -> None:
        try:
            # Shielded: a cancelled wait must not cancel the storage future the flusher completes.
            await asyncio.shield(awaitable_durable(pending.durable))
            await asyncio.to_thread(self._offsets_log.finish_snapshot, pending.first_offset)
        except Exception:
            self._offsets_log.abandon_snapshot()
            log.exception("snapshot of %s failed; the log keeps its older records", OFFSETS_TOPIC)
        else:
            log.info(
                "%s snapshot done: the log now starts at offset %d",
                OFFSETS_TOPIC,
                pending.first_offset,
            )
