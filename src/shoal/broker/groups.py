"""The group coordinator on the event loop: its timer, its parked requests, its snapshots.

:class:`~shoal.coordinator.group_coordinator.GroupCoordinator` is pure; this is where its
callbacks become awaitable futures and its deadlines become one timer task. The task sleeps
until the coordinator's next deadline or until a request changes the groups (:meth:`kick`),
whichever comes first, then lets the coordinator act on what has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from shoal.clock import Clock
from shoal.coordinator.group import JoinRequest, JoinResult, SyncResult
from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.group_coordinator import GroupCoordinator, PendingSnapshot
from shoal.coordinator.offsets_log import OFFSETS_TOPIC, OffsetsLog, offsets_log_config
from shoal.storage import LogConfig, LogManager

log = logging.getLogger(__name__)

TIMER_SLEEP_S_MAX = 60.0
"""The timer wakes at least this often even with no deadline: a cheap guard against a missed
kick leaving a timer unarmed for long."""


class GroupService:
    def __init__(
        self, logs: LogManager, base_config: LogConfig, clock: Clock, config: GroupConfig
    ) -> None:
        self.clock = clock
        log_config = offsets_log_config(base_config, config)
        plog = logs.get(OFFSETS_TOPIC, 0)
        if plog is None:
            plog = logs.create(OFFSETS_TOPIC, 0, log_config)
        else:
            plog.update_config(log_config)
        self.offsets_log = OffsetsLog(plog, config, clock)
        self.coordinator = GroupCoordinator(clock, config, self.offsets_log)
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._snapshot_task: asyncio.Task[None] | None = None

    # -- the timer ------------------------------------------------------------------------

    def kick(self) -> None:
        """Something changed: re-arm the timer (and start it on the first request)."""
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.ensure_future(self._run_timer())
        if self._wakeup is not None:
            self._wakeup.set()

    async def _run_timer(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:  # pragma: no cover - kick() sets it before starting the task
            return
        while True:
            deadline = self.coordinator.next_deadline_ms()
            timeout = TIMER_SLEEP_S_MAX
            if deadline is not None:
                timeout = min(timeout, max(0.0, (deadline - self.clock.monotonic_ms()) / 1000))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout)
            wakeup.clear()
            try:
                self.coordinator.advance()
            except Exception:
                # A bug in the coordinator must not silently stop every group's timers.
                log.exception("group coordinator timer failed")

    async def stop(self) -> None:
        self.coordinator.shutdown()
        for task in (self._task, self._snapshot_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None

    # -- parked requests ------------------------------------------------------------------

    def join(self, group_id: str, request: JoinRequest) -> asyncio.Future[JoinResult]:
        """Add the member to the group now; the future resolves when the join phase ends."""
        future: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()

        def respond(result: JoinResult) -> None:
            if not future.done():  # the client may have gone away meanwhile
                future.set_result(result)

        self.coordinator.join(group_id, request, respond)
        self.kick()
        return future

    def sync(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        assignments: dict[str, bytes],
        *,
        protocol_type: str | None,
        protocol_name: str | None,
    ) -> asyncio.Future[SyncResult]:
        """Hand the coordinator the member's sync now; the future resolves with its assignment."""
        future: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()

        def respond(result: SyncResult) -> None:
            if not future.done():
                future.set_result(result)

        self.coordinator.sync(
            group_id,
            member_id,
            group_instance_id,
            generation_id,
            assignments,
            respond,
            protocol_type=protocol_type,
            protocol_name=protocol_name,
        )
        self.kick()
        return future

    # -- snapshots of the offsets log -----------------------------------------------------

    def after_write(self) -> None:
        """Start a snapshot of the offsets log if it has grown enough (see offsets_log)."""
        if self._snapshot_task is not None and not self._snapshot_task.done():
            return
        pending = self.coordinator.maybe_snapshot()
        if pending is not None:
            self._snapshot_task = asyncio.ensure_future(self._finish_snapshot(pending))

    async def _finish_snapshot(self, pending: PendingSnapshot) -> None:
        try:
            # Shielded: stopping must not cancel the storage future the flusher completes.
            await asyncio.shield(asyncio.wrap_future(pending.durable))
            await asyncio.to_thread(self.offsets_log.finish_snapshot, pending.first_offset)
        except Exception:
            self.offsets_log.abandon_snapshot()
            log.exception("snapshot of %s failed; the log keeps its older records", OFFSETS_TOPIC)
        else:
            log.info(
                "%s snapshot done: the log now starts at offset %d",
                OFFSETS_TOPIC,
                pending.first_offset,
            )
