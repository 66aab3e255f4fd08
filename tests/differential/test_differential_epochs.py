"""The scenarios of scenarios_epochs.py against Apache Kafka and shoal: results must be equal
(no accepted differences)."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ErrorCode
from tests.differential.scenarios_epochs import SCENARIOS
from tests.peers.kafka_peer import KafkaPeer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_kafka(scenario: str, kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker) -> None:
    run = SCENARIOS[scenario]
    kafka: dict[str, Any] = run(kafka_peer.bootstrap_servers)
    shoal: dict[str, Any] = run(shoal_target.bootstrap_servers)
    differing = {
        f"{section}[{case}]": {"shoal": shoal[section].get(case), "kafka": answer}
        for section, cases in kafka.items()
        if isinstance(cases, dict) and all(isinstance(a, dict) for a in cases.values())
        for case, answer in cases.items()
        if shoal[section].get(case) != answer
    }
    assert not differing, differing  # each case named, the two answers side by side
    assert shoal == kafka
    if scenario != "fresh_topic_epochs":
        return
    # The scenario saw what it tests: Kafka's answers for a fresh topic's epoch 0.
    assert kafka["metadata_epoch"] == 0
    assert kafka["fetch"]["0/0/-1"]["stamped_epoch"] == 0
    assert kafka["fetch"]["0/1/-1"]["error"] == ErrorCode.UNKNOWN_LEADER_EPOCH
    assert kafka["fetch"]["5/-1/0"]["diverging"] == (0, 3)
    assert kafka["offset_for_leader_epoch"]["-5/0"]["error"] == ErrorCode.FENCED_LEADER_EPOCH
    assert kafka["offset_for_leader_epoch"]["-1/0"] == {
        "error": 0,
        "leader_epoch": 0,
        "end_offset": 3,
    }
