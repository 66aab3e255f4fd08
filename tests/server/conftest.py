"""One broker per test module, attacked on some connections while a healthy client works on
another: after every bad input, the test checks that the healthy client still makes progress."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from shoal.embedded import EmbeddedBroker
from tests.conftest import run_on_loop
from tests.server.wire import HealthyClient

HEALTHY_TOPIC = "healthy"

FETCH_WAIT_MS_MAX = 200
"""Fuzzed Fetch requests may ask to park for up to the broker's cap (30 s by default); a small
cap keeps each example short without changing what is tested."""


@dataclass
class Arena:
    broker: EmbeddedBroker
    healthy: HealthyClient

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def connection_count(self) -> int:
        def count() -> int:
            kafka = self.broker.app.kafka
            assert kafka is not None
            return kafka.connection_count

        return run_on_loop(self.broker, count)


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    data_dir = tmp_path_factory.mktemp("arena")
    with EmbeddedBroker(str(data_dir)) as broker:

        def cap_fetch_wait() -> None:
            inner = broker.app.broker
            assert inner is not None
            inner.config = dataclasses.replace(
                inner.config, fetch_max_wait_ms_max=FETCH_WAIT_MS_MAX
            )

        run_on_loop(broker, cap_fetch_wait)
        healthy = HealthyClient(broker.bootstrap_servers, HEALTHY_TOPIC).start()
        try:
            yield Arena(broker, healthy)
        finally:
            healthy.stop()
