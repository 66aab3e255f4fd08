"""A shoal broker with a SASL listener, and its users, for the security tests.

:func:`start_sasl_broker` is the one place that turns SASL on for a test broker (a
SASL_PLAINTEXT listener on loopback, unless ``listeners`` is given), used by
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
    settings.setdefault("listeners", "SASL_PLAINTEXT://127.0.0.1:0")
    return factory(sasl_enabled_mechanisms=",".join(mechanisms), **settings)


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


def scram_login(client: Any, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> Any:
    """A SCRAM exchange on a :class:`tests.server.wire.WireClient` (SaslHandshake v1, then
    SaslAuthenticate v2); returns the last SaslAuthenticate response."""
    import base64
    import hashlib
    import hmac

    algorithm = ALGORITHMS[mechanism]
    handshake = client.request(17, 1, {"mechanism": mechanism})
    assert handshake.error_code == 0, handshake
    bare = f"n={user},r=wireclientnonce"
    first = client.request(36, 2, {"auth_bytes": f"n,,{bare}".encode()})
    if first.error_code != 0:
        return first
    server_first = bytes(first.auth_bytes).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    salt, iterations = base64.b64decode(fields["s"]), int(fields["i"])
    final_bare = f"c=biws,r={fields['r']}"
    auth = f"{bare},{server_first},{final_bare}".encode()
    salted = hashlib.pbkdf2_hmac(algorithm.hash_name, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", algorithm.hash_name).digest()
    stored = hashlib.new(algorithm.hash_name, client_key).digest()
    signature = hmac.new(stored, auth, algorithm.hash_name).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    return client.request(36, 2, {"auth_bytes": f"{final_bare},p={proof.decode()}".encode()})
