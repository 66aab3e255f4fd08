"""Differential conformance: each scenario runs against Apache Kafka and shoal, and the two
observable results are compared (minus the differences listed in accepted_differences.toml)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shoal.embedded import EmbeddedBroker
from tests.peers.kafka_peer import KafkaPeer


@pytest.fixture(scope="session")
def shoal_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """shoal configured like the Kafka peer: no topic auto-creation, no rebalance delay."""
    with EmbeddedBroker(
        str(tmp_path_factory.mktemp("shoal-differential")),
        auto_create_topics=False,
        group_initial_rebalance_delay_ms=0,
    ) as embedded:
        yield embedded


@pytest.fixture(params=["kafka", "shoal"])
def target(request: pytest.FixtureRequest) -> str:
    """The bootstrap address of one of the two brokers (for single-target tests)."""
    if request.param == "kafka":
        peer: KafkaPeer = request.getfixturevalue("kafka_peer")
        return peer.bootstrap_servers
    broker: EmbeddedBroker = request.getfixturevalue("shoal_target")
    return broker.bootstrap_servers
