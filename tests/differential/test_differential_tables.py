"""The scenario tables of scenarios_limits_groups.py, scenarios_admin.py and scenarios_configs.py
against Apache Kafka and shoal: results must be equal. They have no accepted differences
(accepted_differences.toml names only the scenarios of scenarios.py); what two correct brokers
may legitimately differ on is left out of each result by the scenario itself, and its docstring
says so. A difference found here is reported, not accepted silently."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from tests.differential import scenarios_admin, scenarios_configs, scenarios_limits_groups
from tests.peers.kafka_peer import KafkaPeer

pytestmark = pytest.mark.integration

TABLES = (scenarios_limits_groups.SCENARIOS, scenarios_admin.SCENARIOS, scenarios_configs.SCENARIOS)
SCENARIOS = {name: run for table in TABLES for name, run in table.items()}
assert len(SCENARIOS) == sum(len(table) for table in TABLES), "a scenario name is used twice"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_kafka(scenario: str, kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker) -> None:
    run = SCENARIOS[scenario]
    kafka: dict[str, Any] = run(kafka_peer.bootstrap_servers)
    shoal: dict[str, Any] = run(shoal_target.bootstrap_servers)
    assert shoal == kafka
