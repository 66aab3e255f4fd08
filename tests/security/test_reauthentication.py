"""KIP-368 re-authentication: sessions end after connections.max.reauth.ms; librdkafka
re-authenticates on the same connection and keeps working; a client that does not is closed
at its next request after the session ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from shoal.embedded import EmbeddedBroker
from tests.server.wire import WireClient
from tests.support.broker import run_on_loop
from tests.support.jwt_keys import SigningKey
from tests.support.sasl import add_user, client_config, scram_login

pytestmark = pytest.mark.integration

REAUTH_MS = 3000
"""librdkafka re-authenticates at about 90% of a session: a few seconds leave it a margin
of hundreds of milliseconds on a loaded machine."""


def _reauthentications(broker: EmbeddedBroker) -> int:
    def count() -> int:
        server = broker.app.kafka
        assert server is not None
        return sum(
            c._gate.session.reauthentications for c in server._connections if c._gate is not None
        )

    return run_on_loop(broker, count)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_confluent_client_keeps_working_across_several_sessions(
    sasl_broker_factory: Callable[..., EmbeddedBroker], mechanism: str
) -> None:
    broker = sasl_broker_factory(connections_max_reauth_ms=REAUTH_MS)
    add_user(broker, "alice", "alice-secret")
    errors: list[object] = []
    producer = Producer(
        {
            **client_config(broker, mechanism, "alice", "alice-secret"),
            "error_cb": errors.append,
        }
    )
    delivered = 0
    failed: list[object] = []

    def on_delivery(error: object, _message: object) -> None:
        nonlocal delivered
        if error is None:
            delivered += 1
        else:
            failed.append(error)

    # Two session lifetimes at least, and on until two re-authentications: without them the
    # connection would be closed at the first request after each lifetime.
    deadline = time.monotonic() + 2 * REAUTH_MS / 1000
    sent = 0
    while time.monotonic() < deadline or _reauthentications(broker) < 2:
        producer.produce("reauth", b"v", on_delivery=on_delivery)
        sent += 1
        assert producer.flush(30) == 0
        time.sleep(0.1)
        assert time.monotonic() < deadline + 30, "no re-authentication happened"
    assert delivered == sent and not failed
    assert _reauthentications(broker) >= 2
    assert not errors, errors


def test_session_lifetime_is_told_and_an_expired_session_is_closed(
    sasl_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = sasl_broker_factory(connections_max_reauth_ms=REAUTH_MS)
    add_user(broker, "alice", "alice-secret")
    with WireClient(broker.bootstrap_servers) as client:
        final = scram_login(client, "alice", "alice-secret")
        assert final.error_code == 0
        assert final.session_lifetime.total_seconds() * 1000 == REAUTH_MS
        assert client.metadata(None).brokers
        time.sleep(REAUTH_MS / 1000 + 0.5)  # let the session end (no re-authentication)
        client.send(3, 12, {"topics": None, "allow_auto_topic_creation": False})
        assert client.wait_closed() == b""


def test_manual_reauthentication_extends_the_session_and_refuses_another_user(
    sasl_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = sasl_broker_factory(connections_max_reauth_ms=REAUTH_MS)
    add_user(broker, "alice", "alice-secret")
    add_user(broker, "bob", "bob-secret")
    with WireClient(broker.bootstrap_servers) as client:
        assert scram_login(client, "alice", "alice-secret").error_code == 0
        again = scram_login(client, "alice", "alice-secret")
        assert again.error_code == 0 and bytes(again.auth_bytes).startswith(b"v=")
        assert client.metadata(None).brokers
        other = scram_login(client, "bob", "bob-secret")
        assert other.error_code != 0
        assert "Cannot change principals" in (other.error_message or "")
        assert client.wait_closed() == b""


def test_oauth_session_ends_with_the_token_and_librdkafka_reauthenticates(
    sasl_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path
) -> None:
    # No connections.max.reauth.ms: the session lasts as long as the token (its exp).
    key = SigningKey()
    broker = sasl_broker_factory(
        mechanisms=["OAUTHBEARER", "SCRAM-SHA-512"],
        sasl_oauthbearer_jwks_endpoint_url=str(key.write_jwks(tmp_path / "jwks.json")),
        sasl_oauthbearer_clock_skew_seconds=0,
    )
    lifetime_s = 5  # s; a session ends with its token, so three sessions in 12.5 s
    tokens: list[str] = []

    def token_cb(_config: str) -> tuple[str, float]:
        # The expiry librdkafka is told is the token's exp exactly: it refreshes the token
        # at 80% of that, before the session (which ends at exp) asks for re-authentication.
        exp = int(time.time()) + lifetime_s
        tokens.append(key.token(exp=exp))
        return tokens[-1], float(exp)

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": token_cb,
        }
    )
    errors: list[object] = []
    # Two and a half token lifetimes: each session ends with its token, so the connection lives on
    # only by re-authenticating with the fresh ones.
    deadline = time.monotonic() + 2.5 * lifetime_s
    while time.monotonic() < deadline:
        producer.produce("oauth-reauth", b"v", on_delivery=lambda e, _m: errors.append(e))
        assert producer.flush(30) == 0
        producer.poll(0.2)
    assert [e for e in errors if e is not None] == []
    assert len(tokens) >= 3
    assert _reauthentications(broker) >= 2
