"""connections.max.idle.ms: a connection that sends nothing for the idle timeout is closed,
and one that keeps sending requests is not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.handlers import HANDLERS
from shoal.server.kafka import ConnectionLimits, KafkaServer
from shoal.storage import LogConfig, LogManager
from tests.server.wire import request_frame

pytestmark = pytest.mark.integration

IDLE_S = 3.0
"""The idle timeout under test; the talking client speaks every ``TALK_EVERY_S``, far more
often, so even a loaded machine's scheduling delays do not make it look idle."""
TALK_EVERY_S = 0.1
BOUND_S = 60.0
"""Only a bound on waiting, far above the idle timeout; nothing here measures time."""


def test_a_silent_connection_is_closed_and_a_talking_one_is_kept(tmp_path: Path) -> None:
    async def scenario() -> None:
        logs = LogManager.open(str(tmp_path / "data"), default_config=LogConfig())
        server = KafkaServer("127.0.0.1", 0, ConnectionLimits(idle_timeout_s=IDLE_S))
        await server.bind()
        await server.start(Broker(BrokerSettings(), logs, handlers=HANDLERS))
        try:
            silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", server.port)
            talk_reader, talk_writer = await asyncio.open_connection("127.0.0.1", server.port)
            # The talking client sends an ApiVersions request every TALK_EVERY_S, for as long
            # as the silent one takes to be dropped.
            closed = asyncio.ensure_future(silent_reader.read(1))
            answers = 0
            while not closed.done():
                talk_writer.write(request_frame(18, 3, _api_versions(), correlation_id=answers))
                size = int.from_bytes(await talk_reader.readexactly(4), "big")
                await asyncio.wait_for(talk_reader.readexactly(size), BOUND_S)
                answers += 1
                await asyncio.sleep(TALK_EVERY_S)
                assert answers < BOUND_S / TALK_EVERY_S, "the silent connection was never closed"
            assert await closed == b""  # EOF: the broker closed it
            assert answers >= 1
            talk_writer.write(request_frame(18, 3, _api_versions(), correlation_id=answers))
            assert len(await asyncio.wait_for(talk_reader.readexactly(4), BOUND_S)) == 4
            silent_writer.close()
            talk_writer.close()
        finally:
            await server.stop()
            logs.close()

    asyncio.run(scenario())


def _api_versions() -> dict[str, str]:
    return {"client_software_name": "idle-test", "client_software_version": "1"}
