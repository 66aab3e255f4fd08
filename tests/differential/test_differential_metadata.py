"""The scenarios of scenarios_metadata.py against Apache Kafka and shoal: results must be equal
(no accepted differences). The fresh-broker scenario needs brokers nothing has used yet, with
node.id 7 and an advertised listener, so it starts its own pair."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.server.settings import Settings, SettingsError
from tests.differential.scenarios_metadata import ADVERTISED_HOST, NODE, SCENARIOS, fresh_broker
from tests.peers.kafka_peer import KafkaPeer, format_storage, free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_kafka(scenario: str, kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker) -> None:
    run = SCENARIOS[scenario]
    kafka: dict[str, Any] = run(kafka_peer.bootstrap_servers)
    shoal: dict[str, Any] = run(shoal_target.bootstrap_servers)
    assert shoal == kafka


@pytest.fixture
def fresh_kafka(tmp_path: Path) -> Iterator[KafkaPeer]:
    peer = KafkaPeer(tmp_path / "kafka")
    peer.overrides.update(
        {
            "node.id": str(NODE),
            "controller.quorum.voters": f"{NODE}@127.0.0.1:{peer.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{ADVERTISED_HOST}:{peer.port}",
        }
    )
    with peer:
        yield peer


def test_fresh_broker_node_id_and_advertised_listener(
    fresh_kafka: KafkaPeer, tmp_path: Path
) -> None:
    kafka = fresh_broker(fresh_kafka.bootstrap_servers)
    port = free_port()
    with EmbeddedBroker(
        str(tmp_path / "shoal"),
        port=port,
        node_id=NODE,
        advertised_listener=f"{ADVERTISED_HOST}:{port}",
        auto_create_topics=False,
        group_initial_rebalance_delay_ms=0,
    ) as shoal_broker:
        shoal = fresh_broker(shoal_broker.bootstrap_servers)
    assert shoal == kafka
    assert kafka["brokers"] == [(NODE, ADVERTISED_HOST, True)]  # the scenario saw what it tests


def test_a_wildcard_bind_with_nothing_advertised_is_refused_as_by_kafka(tmp_path: Path) -> None:
    """Kafka refuses to advertise 0.0.0.0 (KafkaConfig validation, which `kafka-storage format`
    runs too); shoal refuses a wildcard bind without an advertised listener likewise, rather
    than tell remote clients an address they cannot reach."""
    config = tmp_path / "server.properties"
    controller = free_port()
    config.write_text(
        "process.roles=broker,controller\n"
        "node.id=1\n"
        f"controller.quorum.voters=1@127.0.0.1:{controller}\n"
        f"listeners=PLAINTEXT://0.0.0.0:{free_port()},CONTROLLER://127.0.0.1:{controller}\n"
        "controller.listener.names=CONTROLLER\n"
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
        f"log.dirs={tmp_path / 'data'}\n"
    )
    kafka = format_storage(config)
    assert kafka.returncode != 0
    assert "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0" in kafka.stderr
    with pytest.raises(SettingsError, match="binds every interface"):
        Settings(kafka_listen="0.0.0.0:9092").broker_config()
