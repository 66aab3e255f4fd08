"""KIP-932 share group scenarios (scenarios_share_groups.py) against Apache Kafka 4.4 and
shoal: the results must be equal."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import pytest

from shoal.embedded import EmbeddedBroker
from tests.differential.scenarios_share_groups import SCENARIOS, share_lock_timeout
from tests.peers.kafka_peer import KafkaPeer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_kafka(scenario: str, kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker) -> None:
    run = SCENARIOS[scenario]
    kafka = run(kafka_peer.bootstrap_servers)
    shoal = run(shoal_target.bootstrap_servers)
    assert shoal == kafka


LOCK_DIFFERENTIAL: Final = os.environ.get("SHOAL_SHARE_LOCK_DIFFERENTIAL", "0") == "1"
"""The lock-timeout scenario waits out Kafka's minimum lock (15 s) on each broker, too long
for `make test`'s budget: `make share-lock-differential` runs it."""


@pytest.mark.skipif(not LOCK_DIFFERENTIAL, reason="full mode: make share-lock-differential")
def test_lock_timeout_redelivery_same_as_kafka(
    kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker
) -> None:
    # Both brokers at once: the scenario is mostly waiting for the lock to time out.
    with ThreadPoolExecutor(2) as pool:
        kafka = pool.submit(share_lock_timeout, kafka_peer.bootstrap_servers)
        shoal = pool.submit(share_lock_timeout, shoal_target.bootstrap_servers)
        expected = {
            "configs": None,
            "holder": [("held", 1)],
            "other_before_timeout": [("later", 1)],
            "other_after_timeout": [("held", 2)],
        }
        assert kafka.result() == expected
        assert shoal.result() == expected
