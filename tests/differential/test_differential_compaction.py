"""The scenarios of scenarios_compaction.py against Apache Kafka and shoal: results must be equal,
but for the keys accepted_differences.toml lists (each with its reason)."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from tests.differential.scenarios_compaction import SCENARIOS
from tests.differential.test_differential import accepted
from tests.peers.kafka_peer import KafkaPeer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_kafka(scenario: str, kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker) -> None:
    run = SCENARIOS[scenario]
    kafka: dict[str, Any] = run(kafka_peer.bootstrap_servers)
    shoal: dict[str, Any] = run(shoal_target.bootstrap_servers)
    for key in accepted().get(scenario, {}):
        assert key in kafka, f"accepted difference {scenario}.{key} names no result key"
        kafka.pop(key)
        shoal.pop(key)
    assert shoal == kafka
