"""Each scenario runs against Apache Kafka and against shoal; the results must be equal, except
for the keys accepted_differences.toml lists (each with its reason)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from tests.differential.scenarios import SCENARIOS
from tests.differential.scenarios_compaction import SCENARIOS as COMPACTION_SCENARIOS
from tests.peers.kafka_peer import KafkaPeer

pytestmark = pytest.mark.integration

ACCEPTED_FILE = Path(__file__).with_name("accepted_differences.toml")


def accepted() -> dict[str, dict[str, str]]:
    """scenario -> {result key: reason}."""
    table: dict[str, dict[str, str]] = {}
    for entry in tomllib.loads(ACCEPTED_FILE.read_text()).get("difference", []):
        known = entry["scenario"] in SCENARIOS or entry["scenario"] in COMPACTION_SCENARIOS
        assert known, f"unknown scenario in {ACCEPTED_FILE.name}: {entry}"
        assert entry.get("reason"), f"an accepted difference needs a reason: {entry}"
        table.setdefault(entry["scenario"], {})[entry["key"]] = entry["reason"]
    return table


def test_accepted_differences_file_is_valid() -> None:
    accepted()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_kafka(scenario: str, kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker) -> None:
    run = SCENARIOS[scenario]
    kafka: dict[str, Any] = run(kafka_peer.bootstrap_servers)
    shoal: dict[str, Any] = run(shoal_target.bootstrap_servers)
    skip = accepted().get(scenario, {})
    for key in skip:
        assert key in kafka, f"accepted difference {scenario}.{key} names no result key"
        kafka.pop(key)
        shoal.pop(key, None)
    assert shoal == kafka
