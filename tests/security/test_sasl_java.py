"""Kafka's Java tools against a SASL_PLAINTEXT shoal broker: ``kafka-configs.sh`` manages SCRAM
users (AlterUserScramCredentials / DescribeUserScramCredentials), and the console producer and
consumer log in with SCRAM through a client properties file."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from shoal.embedded import EmbeddedBroker
from tests.differential.tools import ok
from tests.peers.kafka_peer import kafka_tool
from tests.support.sasl import add_user, client_config

pytestmark = pytest.mark.integration

CONFIGS: Final = "org.apache.kafka.tools.ConfigCommand"
CONSOLE_PRODUCER: Final = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER: Final = "org.apache.kafka.tools.consumer.ConsoleConsumer"


def _properties(path: Path, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> Path:
    module = "scram.ScramLoginModule" if mechanism.startswith("SCRAM") else "plain.PlainLoginModule"
    path.write_text(
        "security.protocol=SASL_PLAINTEXT\n"
        f"sasl.mechanism={mechanism}\n"
        f"sasl.jaas.config=org.apache.kafka.common.security.{module} required "
        f'username="{user}" password="{password}";\n'
    )
    return path


@pytest.fixture
def broker(sasl_broker_factory: Callable[..., EmbeddedBroker]) -> EmbeddedBroker:
    started = sasl_broker_factory()
    add_user(started, "admin", "admin-secret")
    return started


def test_kafka_configs_adds_describes_and_deletes_a_scram_user(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    admin_props = _properties(tmp_path / "admin.properties", "admin", "admin-secret")
    common = ["--bootstrap-server", broker.bootstrap_servers, "--command-config", str(admin_props)]
    ok(
        kafka_tool(
            CONFIGS,
            *common,
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[iterations=8192,password=alice-secret]",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        )
    )
    # kafka-configs --describe --entity-type users also asks DescribeClientQuotas (the
    # quotas work); the SCRAM part is read here with the same API it uses.
    alice = AdminClient(client_config(broker, "SCRAM-SHA-512", "alice", "alice-secret"))
    described = alice.describe_user_scram_credentials(["alice"])["alice"].result(30)
    assert [(i.mechanism.name, i.iterations) for i in described.scram_credential_infos] == [
        ("SCRAM_SHA_512", 8192)
    ]
    ok(
        kafka_tool(
            CONFIGS,
            *common,
            "--alter",
            "--delete-config",
            "SCRAM-SHA-512",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        )
    )
    admin = AdminClient(client_config(broker, "SCRAM-SHA-512", "admin", "admin-secret"))
    with pytest.raises(KafkaException) as raised:
        admin.describe_user_scram_credentials(["alice"])["alice"].result(30)
    assert raised.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND


def test_console_producer_and_consumer_with_scram(broker: EmbeddedBroker, tmp_path: Path) -> None:
    props = _properties(tmp_path / "client.properties", "admin", "admin-secret")
    topic = f"java-sasl-{uuid.uuid4().hex[:8]}"
    lines = [f"line-{i}" for i in range(3)]
    ok(
        kafka_tool(
            CONSOLE_PRODUCER,
            "--bootstrap-server",
            broker.bootstrap_servers,
            "--topic",
            topic,
            "--command-config",
            str(props),
            stdin="".join(f"{line}\n" for line in lines),
        )
    )
    consumed = ok(
        kafka_tool(
            CONSOLE_CONSUMER,
            "--bootstrap-server",
            broker.bootstrap_servers,
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            "3",
            "--command-config",
            str(props),
        )
    )
    assert consumed.split() == lines


def test_java_client_with_a_wrong_password_is_refused(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    props = _properties(tmp_path / "bad.properties", "admin", "wrong")
    result = kafka_tool(
        CONFIGS,
        "--bootstrap-server",
        broker.bootstrap_servers,
        "--command-config",
        str(props),
        "--describe",
        "--entity-type",
        "users",
        "--entity-name",
        "admin",
        timeout=120,
    )
    assert result.returncode != 0
    assert "Authentication failed during authentication due to invalid credentials" in (
        result.stdout + result.stderr
    )
