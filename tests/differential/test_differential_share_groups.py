"""KIP-932 share group scenarios (scenarios_share_groups.py) against Apache Kafka 4.4 and
shoal: the results must be equal."""

from __future__ import annotations

import pytest

from shoal.embedded import EmbeddedBroker
from tests.differential.scenarios_share_groups import SCENARIOS
from tests.peers.kafka_peer import KafkaPeer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_kafka(scenario: str, kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker) -> None:
    run = SCENARIOS[scenario]
    kafka = run(kafka_peer.bootstrap_servers)
    shoal = run(shoal_target.bootstrap_servers)
    assert shoal == kafka
