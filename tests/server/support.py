"""The arena of the bad-input tests: one broker attacked on some connections while a healthy client
works on another; after every bad input, the test checks that the healthy client still makes
progress."""

from __future__ import annotations

from dataclasses import dataclass

from shoal.embedded import EmbeddedBroker
from tests.server.wire import HealthyClient
from tests.support.broker import run_on_loop

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
