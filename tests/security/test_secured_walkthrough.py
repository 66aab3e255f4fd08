"""The README's secured broker, step by step, as a user would run it: SASL_SSL with SCRAM-SHA-512,
ACLs, the first user written before the start, the rest managed with ``shoal user`` and ``shoal
acl`` through a Kafka tools properties file, and a client that may use only what it was granted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from tests.cli.support import run_shoal
from tests.server.tls_support import Pki
from tests.support.broker import BrokerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ADMIN_PASSWORD = "admin-secret-1"
ALICE_PASSWORD = "alice-secret-1"


def _properties(path: Path, ca: Path, user: str, password: str) -> Path:
    module = "org.apache.kafka.common.security.scram.ScramLoginModule"
    path.write_text(
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        f'sasl.jaas.config={module} required username="{user}" password="{password}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={ca}\n"
    )
    return path


def _client(bootstrap: str, ca: Path, user: str, password: str) -> dict[str, str]:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": password,
        "ssl.ca.location": str(ca),
        "log_level": "0",
    }


def test_the_readme_secured_broker(
    broker_process: Callable[..., BrokerProcess], tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    data_dir = tmp_path / "shoal-process-0"  # where the broker_process fixture puts it
    created = run_shoal(
        "user", "create", "admin", "--data-dir", str(data_dir), stdin=ADMIN_PASSWORD.encode()
    )
    assert created.returncode == 0, created.stderr.decode()

    process = broker_process(
        listeners="CLIENTS://127.0.0.1:0",
        listener_security_protocol_map="CLIENTS:SASL_SSL",
        sasl_enabled_mechanisms="SCRAM-SHA-512",
        ssl_keystore_location=str(pki.keystore),
        authorizer_class_name="standard",
        super_users="User:admin",
    )
    bootstrap = process.bootstrap_servers
    admin = _properties(tmp_path / "admin.properties", pki.ca_file, "admin", ADMIN_PASSWORD)
    connect = ["-b", bootstrap, "--command-config", str(admin)]
    for argv in (
        ["user", "create", "alice", *connect],
        ["topic", "create", "orders", *connect],
        ["topic", "create", "payroll", *connect],
        [
            "acl", "add", "--allow-principal", "User:alice", "--producer", "--topic", "orders",
            *connect,
        ],
        [
            "acl", "add", "--allow-principal", "User:alice", "--consumer", "--topic", "orders",
            "--group", "billing", *connect,
        ],
    ):  # fmt: skip
        done = run_shoal(*argv, stdin=ALICE_PASSWORD.encode())
        assert done.returncode == 0, (argv, done.stderr.decode())

    alice = _client(bootstrap, pki.ca_file, "alice", ALICE_PASSWORD)
    producer = Producer(alice)
    delivered: dict[str, KafkaError | None] = {}

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        delivered[str(message.topic())] = error

    producer.produce("orders", b"order-1", on_delivery=on_delivery)
    producer.produce("payroll", b"raise", on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert delivered["orders"] is None
    refused = delivered["payroll"]
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    consumer = Consumer({**alice, "group.id": "billing", "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition("orders", 0, 0)])
        message = None
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.value() == b"order-1"
        consumer.commit(message=message, asynchronous=False)  # Read on group billing
    finally:
        consumer.close()

    # A wrong password is refused; so is alice in a group she was not granted.
    wrong = Producer(_client(bootstrap, pki.ca_file, "alice", "not-her-password"))
    with pytest.raises(KafkaException):
        wrong.list_topics(timeout=5)
    # librdkafka gives up waiting for a coordinator after session.timeout.ms (45 s by default):
    # 6 s is plenty here, since the group never joins and nothing else depends on it.
    stranger = Consumer(
        {**alice, "group.id": "other", "enable.auto.commit": False, "session.timeout.ms": 6000}
    )
    try:
        # FindCoordinator refuses the group (Describe on it is needed), so librdkafka never
        # finds a coordinator to commit to, as against Kafka.
        with pytest.raises(KafkaException) as failed:
            stranger.commit(offsets=[TopicPartition("orders", 0, 1)], asynchronous=False)
        assert failed.value.args[0].code() == KafkaError._WAIT_COORD
    finally:
        stranger.close()
