"""The broker is given its whole config once, bound listener ports included (issue 18): the
server binds first, then builds the config and the broker; nothing is patched in afterwards."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from shoal.broker.broker_settings import BrokerSettings
from shoal.embedded import EmbeddedBroker

FETCH_WAIT_MS_MAX = 1_234


def test_the_broker_is_built_with_the_bound_ports_and_keeps_its_config(tmp_path: Path) -> None:
    seen: list[BrokerSettings] = []

    def adjust(config: BrokerSettings) -> BrokerSettings:
        seen.append(config)
        return dataclasses.replace(config, fetch_max_wait_ms_max=FETCH_WAIT_MS_MAX)

    with EmbeddedBroker(
        str(tmp_path),
        listeners="PLAINTEXT://127.0.0.1:0,OTHER://127.0.0.1:0",
        listener_security_protocol_map="PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT",
        adjust_broker_config=adjust,
    ) as embedded:
        app = embedded.app
        broker = app.broker
        assert broker is not None
        # The config the broker was built from already held the ports the sockets got.
        (given,) = seen
        bound = {name: app.listener_port(name) for name in ("PLAINTEXT", "OTHER")}
        assert 0 not in bound.values()
        assert given.advertised_listeners == tuple(
            (name, "127.0.0.1", port) for name, port in bound.items()
        )
        assert broker.config == dataclasses.replace(given, fetch_max_wait_ms_max=FETCH_WAIT_MS_MAX)
        with pytest.raises(AttributeError):
            broker.config = given  # type: ignore[misc]
