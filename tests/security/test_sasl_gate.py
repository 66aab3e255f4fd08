"""The authentication gate on the wire: what an unauthenticated connection may send, how much,
and what it is answered; SaslHandshake/SaslAuthenticate where no exchange is under way."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import Producer

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ErrorCode
from tests.server.wire import ClosedByPeer, WireClient, host_port
from tests.support.broker import BrokerProcess
from tests.support.sasl import add_user, client_config, scram_login

pytestmark = pytest.mark.integration

PRE_AUTH_FRAME_MAX = 512 * 1024


@pytest.fixture
def broker(sasl_broker_factory: Callable[..., EmbeddedBroker]) -> EmbeddedBroker:
    started = sasl_broker_factory(mechanisms=["SCRAM-SHA-512", "PLAIN"])
    add_user(started, "alice", "alice-secret")
    return started


def _still_serves(broker: EmbeddedBroker) -> None:
    producer = Producer(client_config(broker, "SCRAM-SHA-512", "alice", "alice-secret"))
    producer.produce("gate-check", b"v")
    assert producer.flush(30) == 0


def test_api_versions_before_authentication_advertises_the_sasl_apis(
    broker: EmbeddedBroker,
) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        keys = {k.api_key: (k.min_version, k.max_version) for k in client.api_versions().api_keys}
    assert keys[17] == (0, 1)
    assert keys[36] == (0, 2)
    assert 50 in keys and 51 in keys


def test_metadata_before_authentication_closes_the_connection(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        client.send(3, 12, {"topics": None, "allow_auto_topic_creation": False})
        assert client.wait_closed() == b""  # closed, with no answer
    _still_serves(broker)


def test_metadata_after_the_handshake_is_answered_illegal_sasl_state_then_closed(
    broker: EmbeddedBroker,
) -> None:
    # Kafka's SaslServerAuthenticator answers a request other than SaslAuthenticate with that
    # request's error response, then closes.
    with WireClient(broker.bootstrap_servers) as client:
        assert client.request(17, 1, {"mechanism": "SCRAM-SHA-512"}).error_code == 0
        response = client.request(
            3,
            12,
            {"topics": [{"name": "t1", "topic_id": None}], "allow_auto_topic_creation": False},
        )
        assert [(t.name, t.error_code) for t in response.topics] == [
            ("t1", ErrorCode.ILLEGAL_SASL_STATE)
        ]
        assert client.wait_closed() == b""
    _still_serves(broker)


def test_api_versions_after_the_handshake_is_answered_illegal_sasl_state_then_closed(
    broker: EmbeddedBroker,
) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        assert client.request(17, 1, {"mechanism": "SCRAM-SHA-512"}).error_code == 0
        assert client.request(18, 3, {}).error_code == ErrorCode.ILLEGAL_SASL_STATE
        assert client.wait_closed() == b""


def test_unsupported_mechanism_is_answered_with_the_enabled_list_then_closed(
    broker: EmbeddedBroker,
) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        response = client.request(17, 1, {"mechanism": "GSSAPI"})
        assert response.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
        assert list(response.mechanisms) == ["SCRAM-SHA-512", "PLAIN"]
        assert client.wait_closed() == b""


def test_garbage_token_fails_authentication_then_closes(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        assert client.request(17, 1, {"mechanism": "SCRAM-SHA-512"}).error_code == 0
        response = client.request(36, 2, {"auth_bytes": b"\xff\x00garbage"})
        assert response.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert response.error_message == (
            "Authentication failed during authentication due to invalid credentials with "
            "SASL mechanism SCRAM-SHA-512"
        )
        assert client.wait_closed() == b""
    _still_serves(broker)


def test_successful_scram_then_requests_flow_and_principal_is_set(
    broker: EmbeddedBroker,
) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        final = scram_login(client, "alice", "alice-secret")
        assert final.error_code == 0
        assert bytes(final.auth_bytes).startswith(b"v=")
        assert client.metadata(None).brokers
        # Another SaslHandshake with re-authentication off: Kafka's KafkaApis answer.
        assert client.request(17, 1, {"mechanism": "SCRAM-SHA-512"}).error_code == (
            ErrorCode.ILLEGAL_SASL_STATE
        )
        response = client.request(36, 2, {"auth_bytes": b"x"})
        assert response.error_code == ErrorCode.ILLEGAL_SASL_STATE
        assert client.metadata(None).brokers  # the connection is still good


def test_wrong_password_on_the_wire(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        final = scram_login(client, "alice", "not-it")
        assert final.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert client.wait_closed() == b""


def test_oversized_pre_auth_frame_is_refused_before_its_body(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        # Only the size prefix: the broker must refuse it without waiting for 1 MiB.
        client.send_raw(struct.pack(">i", PRE_AUTH_FRAME_MAX + 1))
        assert client.wait_closed() == b""
    _still_serves(broker)


def test_one_mib_username_is_refused_and_others_are_unaffected(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        assert client.request(17, 1, {"mechanism": "SCRAM-SHA-512"}).error_code == 0
        token = b"n,,n=" + b"u" * (1024 * 1024) + b",r=nonce"
        with pytest.raises((ClosedByPeer, ConnectionError)):
            client.request(36, 2, {"auth_bytes": token})
    _still_serves(broker)


def test_plaintext_broker_answers_sasl_requests_with_illegal_sasl_state(
    shoal_broker: EmbeddedBroker,
) -> None:
    with WireClient(shoal_broker.bootstrap_servers) as client:
        assert client.request(17, 1, {"mechanism": "PLAIN"}).error_code == (
            ErrorCode.ILLEGAL_SASL_STATE
        )
        response = client.request(36, 2, {"auth_bytes": b"\x00a\x00b"})
        assert response.error_code == ErrorCode.ILLEGAL_SASL_STATE
        assert response.error_message == (
            "SaslAuthenticate request received after successful authentication"
        )


def test_the_schema_registry_works_on_a_sasl_broker(broker: EmbeddedBroker) -> None:
    # The registry is a Kafka client of its broker: it logs in as shoal's internal user.
    import httpx

    response = httpx.post(
        f"{broker.http_url}/subjects/s/versions",
        json={"schema": '{"type": "string"}'},
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert httpx.get(f"{broker.http_url}/subjects", timeout=30).json() == ["s"]
    # The internal user is never listed among the SCRAM users.
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(broker, "SCRAM-SHA-512", "alice", "alice-secret"))
    assert set(admin.describe_user_scram_credentials().result(30)) == {"alice"}


def test_a_client_that_never_authenticates_is_closed(
    broker: EmbeddedBroker,
) -> None:
    # The authentication deadline, shortened for this broker's new connections.
    import dataclasses

    from tests.support.broker import run_on_loop

    server = broker.app.kafka
    assert server is not None and server._sasl is not None
    short = dataclasses.replace(server._sasl, authentication_timeout_s=0.5)
    run_on_loop(broker, lambda: setattr(server, "_sasl", short))
    with WireClient(broker.bootstrap_servers) as client:
        assert client.request(17, 1, {"mechanism": "SCRAM-SHA-512"}).error_code == 0
        # ... then nothing: the broker closes the connection by itself.
        assert client.wait_closed() == b""
    _still_serves(broker)


def test_handshake_v0_then_bare_tokens(broker: EmbeddedBroker) -> None:
    # Clients older than Kafka 1.0: after SaslHandshake v0 the tokens are bare frames.
    with WireClient(broker.bootstrap_servers) as client:
        assert client.request(17, 0, {"mechanism": "PLAIN"}).error_code == 0
        client.send_raw(struct.pack(">i", 19) + b"\x00alice\x00alice-secret")
        assert client.read_frame() == b""
        assert client.metadata(None).brokers
    with WireClient(broker.bootstrap_servers) as client:
        assert client.request(17, 0, {"mechanism": "PLAIN"}).error_code == 0
        client.send_raw(struct.pack(">i", 12) + b"\x00alice\x00wrong")
        assert client.wait_closed() == b""  # v0 has no error answer: closed


def test_handshake_v0_with_scram_bare_tokens(broker: EmbeddedBroker) -> None:
    class Bare:
        """The wire client's request() for SaslAuthenticate, as bare frames (v0)."""

        def __init__(self, client: WireClient) -> None:
            self.client = client

        def request(self, api_key: int, version: int, values: dict[str, Any]) -> Any:
            if api_key == 17:
                return self.client.request(17, 0, values)
            token = values["auth_bytes"]
            self.client.send_raw(struct.pack(">i", len(token)) + token)
            return SimpleNamespace(error_code=0, auth_bytes=self.client.read_frame())

    with WireClient(broker.bootstrap_servers) as client:
        final = scram_login(Bare(client), "alice", "alice-secret")
        assert bytes(final.auth_bytes).startswith(b"v=")
        assert client.metadata(None).brokers


def test_pipelined_requests_before_authentication_are_answered_in_order(
    broker: EmbeddedBroker,
) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        ids = [client.send(18, 3, {"client_software_name": "x", "client_software_version": "1"})]
        ids.append(client.send(17, 1, {"mechanism": "PLAIN"}))
        ids.append(client.send(36, 2, {"auth_bytes": b"\x00alice\x00alice-secret"}))
        assert client.receive(18, 3, ids[0]).error_code == 0
        assert client.receive(17, 1, ids[1]).error_code == 0
        assert client.receive(36, 2, ids[2]).error_code == 0
        assert client.metadata(None).brokers


PRE_AUTH_FLOOD_CONNECTIONS = 200
PRE_AUTH_PARTIAL_BYTES = 400 * 1024
"""Each flooding connection sends this much of a frame just under the pre-auth bound, then
stalls: the most an unauthenticated client can make the broker hold."""


def test_a_pre_auth_flood_costs_at_most_the_per_connection_bound(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    """Many unauthenticated connections, each holding a partial frame near the 512 KiB bound:
    memory grows by no more than that bound per connection, and a real client still logs in."""
    process = broker_process(
        listeners="SASL_PLAINTEXT://127.0.0.1:0", sasl_enabled_mechanisms="SCRAM-SHA-512"
    )
    host, port = host_port(process.bootstrap_servers)
    before = process.rss_bytes()
    flood: list[socket.socket] = []
    try:
        prefix = struct.pack(">i", PRE_AUTH_FRAME_MAX - 16)
        for _ in range(PRE_AUTH_FLOOD_CONNECTIONS):
            sock = socket.create_connection((host, port), timeout=10)
            sock.sendall(prefix + b"\0" * PRE_AUTH_PARTIAL_BYTES)
            flood.append(sock)
        time.sleep(1.0)  # let the broker read what was sent
        during = process.rss_bytes()
        with WireClient(process.bootstrap_servers) as client:  # not starved by the flood
            assert client.request(17, 1, {"mechanism": "SCRAM-SHA-512"}).error_code == 0
    finally:
        for sock in flood:
            sock.close()
    growth = during - before
    print(
        f"{PRE_AUTH_FLOOD_CONNECTIONS} connections x {PRE_AUTH_PARTIAL_BYTES // 1024} KiB "
        f"pre-auth: RSS +{growth / 2**20:.1f} MiB"
    )
    assert growth <= PRE_AUTH_FLOOD_CONNECTIONS * PRE_AUTH_FRAME_MAX + 32 * 2**20
    assert process.exit_code is None
