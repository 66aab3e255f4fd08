"""Apache Kafka's kafka-configs tool managing client quotas (AlterClientQuotas and
DescribeClientQuotas through the Java admin client), against shoal and, for reference, against
Apache Kafka: users, client ids, (user, client id) pairs, the <default> entities and IPs set,
described and deleted; a fractional byte rate refused with Kafka's message.

Kafka applies a change a moment after it answers, so a describe after a change is retried until
it shows (bounded). Every quota set is deleted again: the Kafka peer is shared.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Final

import pytest

from tests.differential.scenarios import TIMEOUT_S
from tests.peers.kafka_peer import kafka_tool

pytestmark = pytest.mark.integration

CONFIGS: Final = "org.apache.kafka.tools.ConfigCommand"


def configs(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return kafka_tool(CONFIGS, "--bootstrap-server", target, *args)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def described_until(target: str, entity: list[str], done: Callable[[str], bool]) -> str:
    """The describe output once ``done`` holds (bounded). Only the quota lines are read:
    describing users also lists SCRAM credentials, another API."""
    deadline = time.monotonic() + TIMEOUT_S
    out = configs(target, "--describe", *entity).stdout
    while not done(out) and time.monotonic() < deadline:
        time.sleep(0.2)
        out = configs(target, "--describe", *entity).stdout
    return out


def test_quotas_with_kafka_configs(target: str) -> None:
    user, client = f"u-{uuid.uuid4().hex[:6]}", f"c-{uuid.uuid4().hex[:6]}"
    a_user = ["--entity-type", "users", "--entity-name", user]
    a_client = ["--entity-type", "clients", "--entity-name", client]
    pair = [*a_user, *a_client]
    default_user_clients = [
        "--entity-type",
        "users",
        "--entity-default",
        "--entity-type",
        "clients",
        "--entity-default",
    ]
    an_ip = ["--entity-type", "ips", "--entity-name", "127.0.0.9"]
    try:
        ok(
            configs(
                target,
                "--alter",
                "--add-config",
                "producer_byte_rate=1048576,consumer_byte_rate=2097152",
                *a_user,
            )
        )
        ok(configs(target, "--alter", "--add-config", "request_percentage=12.5", *a_client))
        ok(configs(target, "--alter", "--add-config", "producer_byte_rate=4096", *pair))
        ok(
            configs(
                target, "--alter", "--add-config", "consumer_byte_rate=8192", *default_user_clients
            )
        )
        ok(configs(target, "--alter", "--add-config", "connection_creation_rate=25", *an_ip))

        expected_user = (
            f"Quota configs for user-principal '{user}' are "
            "consumer_byte_rate=2097152.0, producer_byte_rate=1048576.0"
        )
        assert expected_user in described_until(target, a_user, lambda o: expected_user in o)
        expected_client = f"Quota configs for client-id '{client}' are request_percentage=12.5"
        out = described_until(target, a_client, lambda o: expected_client in o)
        assert expected_client in out
        expected_pair = (
            f"Quota configs for user-principal '{user}', client-id '{client}' are "
            "producer_byte_rate=4096.0"
        )
        assert expected_pair in described_until(target, pair, lambda o: expected_pair in o)
        expected_default = (
            "Quota configs for the default user-principal, the default client-id are "
            "consumer_byte_rate=8192.0"
        )
        out = described_until(target, default_user_clients, lambda o: expected_default in o)
        assert expected_default in out
        expected_ip = "Quota configs for ip '127.0.0.9' are connection_creation_rate=25.0"
        assert expected_ip in described_until(target, an_ip, lambda o: expected_ip in o)

        # Bad input: refused with Kafka's message, nothing changed.
        refused = configs(target, "--alter", "--add-config", "producer_byte_rate=1.5", *a_user)
        assert refused.returncode != 0
        assert "producer_byte_rate cannot be a fractional value." in refused.stdout + refused.stderr
        assert expected_user in configs(target, "--describe", *a_user).stdout

        ok(configs(target, "--alter", "--delete-config", "producer_byte_rate", *a_user))
        left = f"Quota configs for user-principal '{user}' are consumer_byte_rate=2097152.0"
        assert left in described_until(target, a_user, lambda o: left in o)
    finally:
        for entity, keys in (
            (a_user, "producer_byte_rate,consumer_byte_rate"),
            (a_client, "request_percentage"),
            (pair, "producer_byte_rate"),
            (default_user_clients, "consumer_byte_rate"),
            (an_ip, "connection_creation_rate"),
        ):
            configs(target, "--alter", "--delete-config", keys, *entity)
    gone = described_until(target, a_client, lambda o: "request_percentage" not in o)
    assert "request_percentage" not in gone
