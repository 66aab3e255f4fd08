"""The ``event_loop`` setting: which loop ``shoal broker`` and an embedded broker run on, and a
clear refusal of a loop that is unknown or not installed."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import uvloop
from confluent_kafka.admin import AdminClient

from shoal.embedded import EmbeddedBroker
from shoal.server.event_loops import EventLoopUnavailable, loop_factory
from shoal.server.settings import Settings, SettingsError
from tests.server.test_node_identity import shoal_broker_command


def loop_type(choice: str) -> type[asyncio.AbstractEventLoop]:
    loop = loop_factory(choice)()
    try:
        return type(loop)
    finally:
        loop.close()


def test_auto_and_uvloop_run_uvloop_and_asyncio_runs_asyncios_own() -> None:
    assert loop_type("auto") is uvloop.Loop
    assert loop_type("uvloop") is uvloop.Loop
    assert not issubclass(loop_type("asyncio"), uvloop.Loop)


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert not issubclass(loop_type("auto"), uvloop.Loop)
    with pytest.raises(EventLoopUnavailable, match="uvloop is not installed"):
        loop_factory("uvloop")


def test_an_unknown_event_loop_is_refused_naming_the_choices() -> None:
    with pytest.raises(SettingsError, match="event_loop must be one of auto, asyncio, uvloop"):
        Settings(event_loop="trio").broker_config()


@pytest.mark.integration
def test_shoal_broker_refuses_an_unknown_event_loop() -> None:
    env = {**os.environ, "SHOAL_EVENT_LOOP": "fastest"}
    code, stderr = shoal_broker_command("--kafka-listen", "127.0.0.1:0", env=env)
    assert code == 2
    assert "event_loop must be one of auto, asyncio, uvloop, not 'fastest'" in stderr


@pytest.mark.integration
@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_an_embedded_broker_serves_on_the_loop_it_is_given(event_loop: str, tmp_path: Path) -> None:
    with EmbeddedBroker(str(tmp_path / "data"), event_loop=event_loop) as broker:
        assert isinstance(broker._loop, uvloop.Loop) == (event_loop == "uvloop")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        assert admin.list_topics(timeout=30).brokers


@pytest.mark.integration
def test_an_embedded_broker_runs_on_asyncios_loop_by_default(tmp_path: Path) -> None:
    with EmbeddedBroker(str(tmp_path / "data")) as broker:
        assert not isinstance(broker._loop, uvloop.Loop)
