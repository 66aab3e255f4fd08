"""The SASL exchange on the wire against Apache Kafka 4.4 and shoal, both with a
SASL_PLAINTEXT listener and the same users: the same answers to handshakes, good and bad
credentials, requests before authentication, and SASL requests after it."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from shoal.embedded import EmbeddedBroker
from tests.peers.kafka_peer import KafkaPeer, free_port
from tests.server.wire import ClosedByPeer, WireClient
from tests.support.sasl import add_user, scram_login

pytestmark = pytest.mark.integration

MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
USERS = {"alice": "alice-secret"}


@pytest.fixture(scope="module")
def kafka_sasl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Kafka with a SASL_PLAINTEXT listener beside its PLAINTEXT one (used to add users)."""
    peer = KafkaPeer(tmp_path_factory.mktemp("kafka-sasl"))
    sasl_port = free_port()
    jaas_plain = "org.apache.kafka.common.security.plain.PlainLoginModule required " + " ".join(
        f'user_{name}="{password}"' for name, password in USERS.items()
    )
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    peer.overrides = {
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{peer.port},CONTROLLER://127.0.0.1:{peer.controller_port},"
            f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        ),
        "advertised.listeners": (
            f"PLAINTEXT://127.0.0.1:{peer.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        ),
        "listener.security.protocol.map": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
        ),
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas_plain + ";",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": scram,
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": scram,
    }
    with peer:
        admin = AdminClient({"bootstrap.servers": peer.bootstrap_servers})
        upserts = [
            UserScramCredentialUpsertion(
                name, ScramCredentialInfo(mechanism, 4096), password.encode()
            )
            for name, password in USERS.items()
            for mechanism in (ScramMechanism.SCRAM_SHA_512, ScramMechanism.SCRAM_SHA_256)
        ]
        for upsert in upserts:  # one per request: Kafka refuses a user twice in one
            for future in admin.alter_user_scram_credentials([upsert]).values():
                future.result(60)
        yield f"127.0.0.1:{sasl_port}"


@pytest.fixture(scope="module")
def shoal_sasl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.support.sasl import start_sasl_broker

    data_dir = str(tmp_path_factory.mktemp("shoal-sasl"))
    broker = start_sasl_broker(
        lambda **settings: EmbeddedBroker(data_dir, **settings).start(), mechanisms=MECHANISMS
    )
    try:
        for name, password in USERS.items():
            add_user(broker, name, password)
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def _closed(client: WireClient) -> bool:
    try:
        return client.wait_closed() == b""
    except TimeoutError:
        return False


def _scenario(bootstrap: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with WireClient(bootstrap) as client:
        response = client.request(17, 1, {"mechanism": "GSSAPI"})
        # Compared as a set: Kafka lists the mechanisms in its HashMap's order (SCRAM-SHA-512,
        # PLAIN, SCRAM-SHA-256 here), shoal in the configured order.
        out["unsupported"] = (
            int(response.error_code),
            sorted(response.mechanisms),
            _closed(client),
        )
    with WireClient(bootstrap) as client:
        client.send(3, 12, {"topics": None, "allow_auto_topic_creation": False})
        out["metadata_before_auth_closed"] = _closed(client)
    with WireClient(bootstrap) as client:
        client.send(36, 2, {"auth_bytes": b"x"})
        out["authenticate_before_handshake_closed"] = _closed(client)
    with WireClient(bootstrap) as client:
        client.request(17, 1, {"mechanism": "SCRAM-SHA-512"})
        client.send(3, 12, {"topics": None, "allow_auto_topic_creation": False})
        # Both close the connection. Known difference, not compared: Kafka first sends the
        # request's own error response (ILLEGAL_SASL_STATE in Metadata's shape, an empty
        # topic list here); shoal closes without one, as both do before the handshake.
        client.wait_closed()
        out["metadata_after_handshake_closed"] = True
    for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
        for user, password in (("alice", "wrong"), ("nobody", "x")):
            with WireClient(bootstrap) as client:
                final = scram_login(client, user, password, mechanism)
                out[f"{mechanism}:{user}"] = (
                    int(final.error_code),
                    final.error_message,
                    _closed(client),
                )
    with WireClient(bootstrap) as client:
        client.request(17, 1, {"mechanism": "SCRAM-SHA-512"})
        garbage = client.request(36, 2, {"auth_bytes": b"\x00garbage"})
        out["garbage"] = (int(garbage.error_code), garbage.error_message, _closed(client))
    for token, name in ((b"\x00alice\x00wrong", "wrong"), (b"\x00\x00x", "no-user")):
        with WireClient(bootstrap) as client:
            client.request(17, 1, {"mechanism": "PLAIN"})
            plain = client.request(36, 2, {"auth_bytes": token})
            out[f"plain:{name}"] = (int(plain.error_code), plain.error_message, _closed(client))
    with WireClient(bootstrap) as client:
        final = scram_login(client, "alice", "alice-secret")
        out["login"] = (int(final.error_code), bytes(final.auth_bytes)[:2], final.session_lifetime)
        again = client.request(17, 1, {"mechanism": "SCRAM-SHA-512"})
        out["handshake_after_auth"] = int(again.error_code)
        late = client.request(36, 2, {"auth_bytes": b"x"})
        out["authenticate_after_auth"] = (int(late.error_code), late.error_message)
        out["metadata_after_auth"] = len(client.metadata(None).brokers)
    with WireClient(bootstrap) as client:
        client.request(17, 0, {"mechanism": "PLAIN"})
        client.send_raw(struct.pack(">i", 19) + b"\x00alice\x00alice-secret")
        try:
            out["v0_plain"] = client.read_frame()
        except ClosedByPeer:
            out["v0_plain"] = "closed"
        out["v0_metadata"] = len(client.metadata(None).brokers)
    return out


def test_sasl_exchange_same_as_kafka(kafka_sasl: str, shoal_sasl: str) -> None:
    kafka = _scenario(kafka_sasl)
    shoal = _scenario(shoal_sasl)
    assert shoal == kafka
