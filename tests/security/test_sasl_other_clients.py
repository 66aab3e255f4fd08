"""aiokafka, kafka-python and kcat against a SASL_PLAINTEXT shoal broker."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Callable

import pytest

from shoal.embedded import EmbeddedBroker
from tests.support.sasl import add_user

pytestmark = [
    pytest.mark.integration,
    # kafka-python loads its schemas with importlib.resources' legacy API.
    pytest.mark.filterwarnings(
        r"ignore:.* is deprecated. Use files\(\) instead:DeprecationWarning"
    ),
]
TIMEOUT_S = 60


@pytest.fixture
def broker(sasl_broker_factory: Callable[..., EmbeddedBroker]) -> EmbeddedBroker:
    started = sasl_broker_factory()
    add_user(started, "alice", "alice-secret")
    return started


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
def test_aiokafka_scram(broker: EmbeddedBroker, mechanism: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"aio-{uuid.uuid4().hex[:8]}"
    security = {
        "bootstrap_servers": broker.bootstrap_servers,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "alice",
        "sasl_plain_password": "alice-secret",
    }

    async def round_trip() -> bytes | None:
        producer = AIOKafkaProducer(**security)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"from-aiokafka")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **security)
        await consumer.start()
        try:
            message = await asyncio.wait_for(consumer.getone(), TIMEOUT_S)
            return message.value
        finally:
            await consumer.stop()

    assert asyncio.run(round_trip()) == b"from-aiokafka"


def test_aiokafka_wrong_password_is_refused(broker: EmbeddedBroker) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError, KafkaError

    async def start() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap_servers,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username="alice",
            sasl_plain_password="wrong",
            request_timeout_ms=10_000,
        )
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises((KafkaError, KafkaConnectionError)):
        asyncio.run(start())


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512", "SCRAM-SHA-256"])
def test_kafka_python(broker: EmbeddedBroker, mechanism: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    topic = f"kp-{uuid.uuid4().hex[:8]}"
    security = {
        "bootstrap_servers": broker.bootstrap_servers,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "alice",
        "sasl_plain_password": "alice-secret",
    }
    producer = KafkaProducer(**security)
    producer.send(topic, b"from-kafka-python").get(timeout=TIMEOUT_S)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", **security)
    values: list[bytes] = []
    for _ in range(30):
        for records in consumer.poll(timeout_ms=1000).values():
            values.extend(r.value for r in records)
        if values:
            break
    consumer.close()
    assert values == [b"from-kafka-python"]


def test_kafka_python_wrong_password_is_refused(broker: EmbeddedBroker) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    # kafka-python 3.0 reports a failed SASL exchange only by never getting metadata: it
    # reconnects and fails again until max_block_ms.
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap_servers,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="alice",
        sasl_plain_password="wrong",
        api_version=(3, 0),
        max_block_ms=3000,
    )
    try:
        with pytest.raises(KafkaTimeoutError):
            producer.send("t", b"v").get(timeout=10)
    finally:
        producer.close()


def _kcat(
    broker: EmbeddedBroker, password: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat is not installed: run scripts/peers/kcat.sh (apt-get install kcat)")
    return subprocess.run(
        [
            path,
            "-b",
            broker.bootstrap_servers,
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            "sasl.mechanisms=SCRAM-SHA-512",
            "-X",
            "sasl.username=alice",
            "-X",
            f"sasl.password={password}",
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_kcat_scram(broker: EmbeddedBroker) -> None:
    topic = f"kcat-{uuid.uuid4().hex[:8]}"
    produced = _kcat(broker, "alice-secret", "-P", "-t", topic, stdin="one\ntwo\n")
    assert produced.returncode == 0, produced.stderr
    consumed = _kcat(broker, "alice-secret", "-C", "-t", topic, "-o", "beginning", "-c", "2", "-e")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.split() == ["one", "two"]


def test_kcat_wrong_password_is_refused(broker: EmbeddedBroker) -> None:
    listed = _kcat(broker, "wrong", "-L", "-m", "10")
    assert listed.returncode != 0
    assert "Authentication failed" in listed.stderr
