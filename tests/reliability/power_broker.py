"""A broker whose data directory lives on the fault layer, so it can lose power.

The broker (Kafka listener and Broker, no HTTP face or registry: the workload needs neither)
runs on an event loop thread of this process, its files on one
:class:`~shoal.testing.faultfs.FaultyFileSystem` behind a :class:`~shoal.testing.power.PowerSwitch`.
:meth:`PowerBroker.power_loss` cuts the switch (the disk takes no more calls), throws away
what was not durable (``crash``: unsynced bytes dropped, or a random prefix kept, and directory
entries never fsynced gone), drops every connection as a dead machine would, and starts a new
incarnation on the same port that recovers from what survived.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, Final

from shoal.broker.broker import Broker
from shoal.broker.handlers import HANDLERS
from shoal.clock import SYSTEM_CLOCK, Clock
from shoal.coordinator.group_config import GroupConfig
from shoal.server.kafka import KafkaServer
from shoal.server.settings import Settings
from shoal.storage import FlushPolicy, LogManager
from shoal.testing.faultfs import FaultyFileSystem
from shoal.testing.power import PowerSwitch

DATA_DIR: Final = "/data"
START_TIMEOUT_S: Final = 60.0


class PowerBroker:
    def __init__(
        self,
        *,
        seed: int,
        flush_policy: FlushPolicy = FlushPolicy.SYNC,
        group_initial_rebalance_delay_ms: int = 300,
        clock: Clock = SYSTEM_CLOCK,
        advertised_listener: str = "",
        group_min_session_timeout_ms: int = GroupConfig().min_session_timeout_ms,
    ) -> None:
        self.fs = FaultyFileSystem(seed)
        self.clock = clock
        self._settings = Settings(
            kafka_listen="127.0.0.1:0",
            flush_policy=flush_policy.value,
            group_initial_rebalance_delay_ms=group_initial_rebalance_delay_ms,
            advertised_listener=advertised_listener,
            group_min_session_timeout_ms=group_min_session_timeout_ms,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="power-broker")
        self._thread.start()
        self._switch: PowerSwitch | None = None
        self._server: KafkaServer | None = None
        self._broker: Broker | None = None
        self._logs: LogManager | None = None
        self.port = 0
        self.power_losses = 0

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(START_TIMEOUT_S)

    def start(self) -> PowerBroker:
        self._call(self._start())
        return self

    async def _start(self) -> None:
        switch = PowerSwitch(self.fs)
        server = KafkaServer("127.0.0.1", self.port)
        await server.bind()
        config = self._settings.broker_config(bound_port=server.port)
        logs = await asyncio.to_thread(
            LogManager.open, DATA_DIR, fs=switch, clock=self.clock, default_config=config.log
        )
        broker = Broker(replace(config), logs, handlers=HANDLERS, fs=switch, clock=self.clock)
        await server.start(broker)
        self._switch, self._server, self._broker, self._logs = switch, server, broker, logs
        self.port = server.port

    def connection_count(self) -> int:
        """Client connections the running incarnation holds (read on its event loop)."""

        async def count() -> int:
            assert self._server is not None
            return self._server.connection_count

        return int(self._call(count()))

    def unsent_response_bytes(self) -> int:
        async def unsent() -> int:
            assert self._server is not None
            return self._server.unsent_response_bytes

        return int(self._call(unsent()))

    def apply_retention(self) -> int:
        """One retention pass now (shoal's app runs them on a timer; this broker has no app):
        how many segments it deleted."""

        async def apply() -> int:
            assert self._logs is not None
            return await asyncio.to_thread(self._logs.apply_retention)

        return int(self._call(apply()))

    def power_loss(self, *, keep_unsynced: bool) -> None:
        """The machine dies: nothing more reaches the disk, connections drop, then it boots."""
        self._call(self._power_loss(keep_unsynced))
        self.power_losses += 1
        self.start()

    async def _power_loss(self, keep_unsynced: bool) -> None:
        assert self._switch is not None and self._server is not None
        assert self._broker is not None
        self._switch.cut()
        self.fs.crash(keep_unsynced=keep_unsynced)
        await self._server.stop(grace_s=0)  # a dead machine answers nothing more
        await self._broker.groups.stop()  # nor keeps timers that would write for it
        self._discard()

    def _discard(self) -> None:
        """Let the dead incarnation's threads go; whatever they try now fails at the switch."""
        logs = self._logs
        self._switch = self._server = self._broker = self._logs = None
        if logs is not None:
            with contextlib.suppress(Exception):
                logs.close()

    def stop(self) -> None:
        if self._server is not None:
            self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _stop(self) -> None:
        assert self._server is not None and self._broker is not None
        await self._broker.groups.stop()
        await self._server.stop()
        await self._broker.drain()
        if self._logs is not None:
            await asyncio.to_thread(self._logs.close)
        self._server = self._broker = self._logs = None
