"""The scenarios of scenarios_admin.py against Apache Kafka and shoal: results must be equal.
They have no accepted differences; what two correct brokers may legitimately differ on is left
out of each result by the scenario itself, and its docstring says so."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from tests.differential.scenarios_admin import SCENARIOS
from tests.peers.kafka_peer import KafkaPeer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_kafka(scenario: str, kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker) -> None:
    run = SCENARIOS[scenario]
    kafka: dict[str, Any] = run(kafka_peer.bootstrap_servers)
    shoal: dict[str, Any] = run(shoal_target.bootstrap_servers)
    assert shoal == kafka
