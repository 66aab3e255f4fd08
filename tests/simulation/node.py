"""One simulated machine: a broker on the fault-injecting filesystem, on a :class:`SimLoop`.

Requests go to the broker's handlers as kio messages (the way the server hands them over after
decoding) and run as tasks on the loop; the scheduler sees a request answered, or still in
flight, after each settle. A power loss cuts the disk (:class:`PowerSwitch`), throws away what
was not durable, and kills every task of the incarnation; the machine then boots a new one
from what survived.
"""

from __future__ import annotations

import asyncio
import io
import random
from dataclasses import dataclass, field
from typing import Any, Final

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.context import RequestContext
from shoal.broker.handlers import HANDLERS
from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.producers import Producers
from shoal.protocol import Request, RequestHeader
from shoal.protocol._kio import request_class
from shoal.protocol.build import build
from shoal.storage import FlushPolicy, LogConfig, LogManager
from shoal.storage.cleaner_thread import DEDUPE_BUFFER_BYTES_MIN, CleanerSettings, LogCleaner
from shoal.storage.flush import RoundChoice
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem
from shoal.testing.power import PowerSwitch
from shoal.testing.responses import as_client_reads
from tests.simulation.loop import SimLoop

DATA_DIR: Final = "/data"
CTX: Final = RequestContext(client_id="sim", client_host="127.0.0.1", client_port=1)


SHUTDOWN_ROUNDS_MAX: Final = 100
"""Rounds of (settle, run the queued jobs) a clean shutdown may take; a handful is usual."""
PRODUCER_SNAPSHOT_BATCHES: Final = 8
PRODUCER_SNAPSHOT_BYTES: Final = 4_000


@dataclass
class InFlight:
    """A request sent and not yet seen answered by its client."""

    number: int
    api_key: int
    version: int
    task: asyncio.Task[Any]
    meta: dict[str, Any] = field(default_factory=dict)


def log_config() -> LogConfig:
    # Small segments so rolls, sealing and retention happen within a short run; checkpoints
    # only on the flusher's periodic work, which runs on the scheduler's clock.
    return LogConfig(
        flush_policy=FlushPolicy.SYNC,
        segment_bytes=2_000,
        retention_ms=600_000,
        index_interval_bytes=256,
    )


def group_config() -> GroupConfig:
    # A snapshot of __consumer_offsets (and the deletion of what it replaces) every few KiB;
    # share-group records archived after 3 deliveries (5 by default), so that a short run
    # reaches the limit (tests.simulation.share_steps).
    return GroupConfig(
        offsets_snapshot_bytes=1_000, offsets_segment_bytes=700, share_delivery_count_limit=3
    )


def task_stacks(loop: asyncio.AbstractEventLoop) -> str:
    """Where every task of ``loop`` waits: what a hang report needs."""
    out = io.StringIO()
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        task.print_stack(file=out)
    return out.getvalue()


class Node:
    def __init__(self, fs: FaultyFileSystem, clock: FakeClock, rng: random.Random) -> None:
        self.fs = fs
        self.clock = clock
        self.rng = rng
        self.loop: SimLoop | None = None
        self.switch: PowerSwitch | None = None
        self.logs: LogManager | None = None
        self.broker: Broker | None = None
        self.cleaner: LogCleaner | None = None
        """The log cleaner over every compacted log, its thread never started: the scheduler
        runs its cleans (:mod:`tests.simulation.compact_steps`)."""
        self._numbers = 0

    def boot(self) -> None:
        self.loop = SimLoop(self.clock)
        asyncio.set_event_loop(self.loop)
        self.switch = PowerSwitch(self.fs)
        config = BrokerSettings(log=log_config(), group=group_config())
        try:
            self.logs = LogManager.open(
                DATA_DIR,
                fs=self.switch,
                clock=self.clock,
                default_config=config.log,
                threaded_flusher=False,
            )
            self.broker = Broker(
                config, self.logs, handlers=HANDLERS, fs=self.switch, clock=self.clock
            )
            # Producer-state snapshots every few batches (16 MiB by default), so that the
            # snapshot jobs and their recovery run within a short simulation. Same allocator
            # of producer ids: the transaction coordinator holds it already.
            producers = Producers(
                self.switch,
                self.logs,
                self.clock,
                snapshot_interval_batches=PRODUCER_SNAPSHOT_BATCHES,
                snapshot_interval_bytes=PRODUCER_SNAPSHOT_BYTES,
            )
            producers.ids = self.broker.producers.ids
            self.broker.producers = producers
            self.broker.transactions.start()
            logs = self.logs
            self.cleaner = LogCleaner(
                lambda: list(logs.partitions().values()),
                self.clock,
                CleanerSettings(dedupe_buffer_bytes=DEDUPE_BUFFER_BYTES_MIN),
            )
            self.loop.settle()
        except BaseException:
            # A start that fails (a disk fault while recovering) leaves nothing running.
            if self.logs is not None:
                self.logs.abandon()
            self._discard()
            raise

    def power_loss(self, *, keep_unsynced: bool) -> None:
        """Power off: nothing more reaches the disk, unsynced data goes, every task dies."""
        assert self.switch is not None and self.loop is not None
        self.switch.cut()
        self.fs.crash(keep_unsynced=keep_unsynced)
        self._discard()

    def clean_shutdown(self, requests: list[asyncio.Task[Any]]) -> None:
        """Stop as the app does (groups, connections, background work, then the logs, which
        flush and leave the clean-shutdown marker), running queued jobs until it is done."""
        assert self.loop is not None and self.broker is not None and self.logs is not None
        broker, logs = self.broker, self.logs

        async def stop() -> None:
            await broker.groups.stop()
            for task in requests:  # the listeners close the connections
                task.cancel()
            await broker.drain()
            logs.close()

        stopping = self.loop.create_task(stop())
        for _ in range(SHUTDOWN_ROUNDS_MAX):
            self.loop.settle()
            if stopping.done():
                break
            # The flusher thread and the worker threads keep running while the app stops
            # (the logs close last, in the same step as the task ends).
            logs.flush_pending()
            self.loop.executor.run_all(self.rng)
        if not stopping.done():
            raise RuntimeError(
                f"the clean shutdown did not finish in {SHUTDOWN_ROUNDS_MAX} rounds; tasks:\n"
                + task_stacks(self.loop)
            )
        try:
            stopping.result()
        finally:
            self._discard()

    def _discard(self) -> None:
        assert self.loop is not None
        self.loop.shut()
        asyncio.set_event_loop(None)
        self.loop = self.switch = self.logs = self.broker = self.cleaner = None

    def shutdown(self) -> None:
        """End of a run (the files are thrown away with the filesystem)."""
        if self.loop is not None:
            assert self.switch is not None
            self.switch.cut()
            self._discard()

    # -- requests -------------------------------------------------------------------------

    def send(self, api_key: int, version: int, values: dict[str, Any]) -> InFlight:
        assert self.broker is not None and self.loop is not None
        self._numbers += 1
        body = build(request_class(api_key, version), values)
        request = Request(RequestHeader(api_key, version, self._numbers, "sim"), body)
        task = self.loop.create_task(self.broker.handle(CTX, request))
        return InFlight(self._numbers, api_key, version, task)

    @staticmethod
    def answer(flight: InFlight) -> Any:
        """The response as the client reads it; the task must be done (and not failed)."""
        return as_client_reads(flight.task.result(), flight.api_key, flight.version)

    def flush(self, choose: RoundChoice | None = None) -> None:
        """A flusher round: the logs ``choose`` picks finish their work, in its order."""
        assert self.logs is not None and self.loop is not None
        self.logs.flush_pending(choose)
        self.loop.settle()

    def run_job(self) -> str | None:
        assert self.loop is not None
        name = self.loop.executor.run_one(self.rng)
        self.loop.settle()
        return name

    def advance(self, ms: int) -> None:
        assert self.loop is not None
        self.clock.advance(ms)
        self.loop.settle()
