"""The transaction scenarios (classic, and V2 on the wire) against Apache Kafka 4.4 and shoal:
the results must be equal."""

from __future__ import annotations

import pytest

from shoal.embedded import EmbeddedBroker
from tests.differential.txn_marker_scenarios import TXN_MARKER_SCENARIOS
from tests.differential.txn_scenarios import TXN_SCENARIOS
from tests.differential.txn_v2_scenarios import TXN_V2_SCENARIOS
from tests.peers.kafka_peer import KafkaPeer

pytestmark = pytest.mark.integration


ALL_SCENARIOS = TXN_SCENARIOS | TXN_V2_SCENARIOS | TXN_MARKER_SCENARIOS


@pytest.mark.parametrize("scenario", sorted(ALL_SCENARIOS))
def test_same_as_kafka(scenario: str, kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker) -> None:
    run = ALL_SCENARIOS[scenario]
    kafka = run(kafka_peer.bootstrap_servers)
    shoal = run(shoal_target.bootstrap_servers)
    assert shoal == kafka
