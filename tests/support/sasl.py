"""A shoal broker with a SASL listener, and its users, for the security tests.

:func:`start_sasl_broker` is the one place that turns SASL on for a test broker (today the
temporary ``kafka_listener_protocol`` setting; the listener map replaces it there), used by
the ``sasl_broker_factory`` fixture in tests/conftest.py. :func:`add_user` creates SCRAM users
straight in the broker's credential store: the first user of a SASL-only listener cannot be
created over the wire (nobody can log in yet), as Kafka's ``kafka-storage format --add-scram``
bootstraps them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from shoal.embedded import EmbeddedBroker
from shoal.security.scram import ALGORITHMS, ITERATIONS_MIN, new_credential
from shoal.security.scram_store import Upsertion
from tests.support.broker import run_on_loop

SCRAM_MECHANISMS: Final = ("SCRAM-SHA-512", "SCRAM-SHA-256")


def start_sasl_broker(
    factory: Callable[..., EmbeddedBroker],
    mechanisms: Sequence[str] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"),
    **settings: Any,
) -> EmbeddedBroker:
    return factory(
        kafka_listener_protocol="SASL_PLAINTEXT",
        sasl_enabled_mechanisms=",".join(mechanisms),
        **settings,
    )


def add_user(
    broker: EmbeddedBroker,
    name: str,
    password: str,
    mechanisms: Sequence[str] = SCRAM_MECHANISMS,
    iterations: int = ITERATIONS_MIN,
) -> None:
    inner = broker.app.broker
    assert inner is not None
    upsertions = [
        Upsertion(name, ALGORITHMS[m], new_credential(ALGORITHMS[m], password, iterations))
        for m in mechanisms
    ]
    run_on_loop(broker, lambda: inner.scram_credentials.apply(upsertions, []))


def client_config(
    broker: EmbeddedBroker, mechanism: str, username: str, password: str, **extra: Any
) -> dict[str, Any]:
    """librdkafka settings to log in to ``broker``."""
    return {
        "bootstrap.servers": broker.bootstrap_servers,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": username,
        "sasl.password": password,
        **extra,
    }


AUTH_ERROR_WAIT_S: Final = 20.0


def auth_error(config: dict[str, Any]) -> Any:
    """The authentication error librdkafka reports for ``config`` (a KafkaError), waiting
    for it rather than for a request to time out."""
    import time

    from confluent_kafka import KafkaError, Producer

    errors: list[KafkaError] = []
    producer = Producer({**config, "error_cb": errors.append})
    deadline = time.monotonic() + AUTH_ERROR_WAIT_S
    while time.monotonic() < deadline:
        producer.poll(0.1)
        auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        if auth:
            return auth[0]
    raise AssertionError(f"no authentication error among {errors}")
