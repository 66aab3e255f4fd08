"""confluent-kafka (librdkafka) against a SASL_PLAINTEXT shoal broker: every mechanism logs in
and produces and consumes; wrong passwords and unknown users are refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from shoal.embedded import EmbeddedBroker
from tests.support.sasl import add_user, auth_error, client_config

pytestmark = pytest.mark.integration

TIMEOUT_S = 30


def _round_trip(config: dict[str, Any]) -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    producer = Producer(config)
    producer.produce(topic, b"hello")
    assert producer.flush(TIMEOUT_S) == 0
    consumer = Consumer({**config, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        for _ in range(60):
            message = consumer.poll(1)
            if message is not None and message.error() is None:
                assert message.value() == b"hello"
                return
        raise AssertionError("no message consumed")
    finally:
        consumer.close()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_each_mechanism_logs_in_and_round_trips(
    sasl_broker_factory: Callable[..., EmbeddedBroker], mechanism: str
) -> None:
    broker = sasl_broker_factory()
    add_user(broker, "alice", "alice-secret")
    _round_trip(client_config(broker, mechanism, "alice", "alice-secret"))


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
@pytest.mark.parametrize("user", ["alice", "nobody"])
def test_wrong_password_and_unknown_user_are_refused(
    sasl_broker_factory: Callable[..., EmbeddedBroker], mechanism: str, user: str
) -> None:
    broker = sasl_broker_factory()
    add_user(broker, "alice", "alice-secret")
    error = auth_error(client_config(broker, mechanism, user, "wrong"))
    if mechanism == "PLAIN":
        assert "Invalid username or password" in error.str()
    else:
        # The same words for a wrong password and a user who does not exist.
        assert (
            f"Authentication failed during authentication due to invalid credentials with "
            f"SASL mechanism {mechanism}" in error.str()
        )


def test_a_mechanism_not_enabled_is_refused_with_the_enabled_list(
    sasl_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = sasl_broker_factory(mechanisms=["SCRAM-SHA-512"])
    add_user(broker, "alice", "alice-secret")
    error = auth_error(client_config(broker, "PLAIN", "alice", "alice-secret"))
    assert "SCRAM-SHA-512" in error.str()
