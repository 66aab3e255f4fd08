"""Several listeners, against Apache Kafka and shoal: Metadata, FindCoordinator (through
describe_consumer_groups) and DescribeCluster each answer with the advertised address of the
listener the request came in on. Both brokers get two plaintext listeners, PLAINTEXT and OTHER
(another name for the same protocol, as in listener.security.protocol.map), OTHER advertised
under another host name; the results must be equal once each port is named by its listener."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from shoal.protocol import ApiKey
from tests.differential.scenarios import unique
from tests.peers.kafka_peer import KafkaPeer, free_port
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

TIMEOUT_S = 30.0
OTHER_HOST = "localhost"


def group_coordinator(port: int) -> tuple[str, int]:
    """FindCoordinator v4 for a group; retried while a fresh broker creates its offsets topic
    (Kafka answers COORDINATOR_NOT_AVAILABLE meanwhile)."""
    deadline = time.monotonic() + TIMEOUT_S
    with WireClient(f"127.0.0.1:{port}") as client:
        while True:
            (found,) = client.request(
                ApiKey.FIND_COORDINATOR, 4, {"coordinator_keys": [unique("listeners-group")]}
            ).coordinators
            if found.error_code == 0:
                return str(found.host), int(found.port)
            assert time.monotonic() < deadline, f"no coordinator: error {found.error_code}"
            time.sleep(0.2)


def told_per_listener(ports: dict[str, int]) -> dict[str, Any]:
    """What a client of each listener is told, ports replaced by the listener they belong to."""
    name_of = {port: name for name, port in ports.items()}
    result: dict[str, Any] = {}
    for listener, port in ports.items():
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        brokers = admin.list_topics(timeout=TIMEOUT_S).brokers.values()
        cluster = admin.describe_cluster(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
        host, coordinator_port = group_coordinator(port)
        result[listener] = {
            "metadata": sorted((b.id, b.host, name_of.get(b.port, b.port)) for b in brokers),
            "cluster": sorted((n.id, n.host, name_of.get(n.port, n.port)) for n in cluster.nodes),
            "coordinator": (host, name_of.get(coordinator_port, coordinator_port)),
        }
    return result


def test_each_listener_is_told_its_own_address_as_by_kafka(
    tmp_path: Path, shoal_broker_factory: Any
) -> None:
    kafka = KafkaPeer(tmp_path / "kafka")
    other = free_port()
    kafka.overrides.update(
        {
            "listeners": f"PLAINTEXT://127.0.0.1:{kafka.port},OTHER://127.0.0.1:{other},"
            f"CONTROLLER://127.0.0.1:{kafka.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{kafka.port},"
            f"OTHER://{OTHER_HOST}:{other}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "OTHER:PLAINTEXT",
        }
    )
    with kafka:
        expected = told_per_listener({"PLAINTEXT": kafka.port, "OTHER": other})

    other = free_port()
    shoal = shoal_broker_factory(
        listeners=f"PLAINTEXT://127.0.0.1:0,OTHER://127.0.0.1:{other}",
        advertised_listeners=f"OTHER://{OTHER_HOST}:{other}",
        listener_security_protocol_map="PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT",
    )
    got = told_per_listener({"PLAINTEXT": shoal.app.listener_port("PLAINTEXT"), "OTHER": other})
    assert got == expected
    # The scenario saw what it tests: each listener told its own address.
    assert expected["OTHER"]["metadata"] == [(1, OTHER_HOST, "OTHER")]
    assert expected["PLAINTEXT"]["coordinator"] == ("127.0.0.1", "PLAINTEXT")
