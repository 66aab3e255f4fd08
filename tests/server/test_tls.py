"""TLS listeners with real clients over real sockets: confluent-kafka and kcat over SSL, mutual
TLS (refusals and the principal a certificate maps to), a plaintext client and a silent one on
the TLS port, certificate reload (file change and SIGHUP), and two listeners each telling its
clients its own address."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any, Final

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from shoal.embedded import EmbeddedBroker
from shoal.server.settings import SettingsError
from tests.differential.test_java_tools import CONSOLE_CONSUMER, CONSOLE_PRODUCER, TOPICS
from tests.differential.tools import ok
from tests.peers.kafka_peer import free_port, kafka_tool
from tests.server.test_node_identity import shoal_broker_command
from tests.server.tls_support import (
    TIMEOUT_S,
    ClientCert,
    Pki,
    pkcs8_keystore,
    refused,
    round_trip,
    served_serial,
    wait_for,
)

pytestmark = pytest.mark.integration

ServiceRules: Final = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L,DEFAULT"
Factory = Callable[..., EmbeddedBroker]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


def tls_broker(factory: Factory, pki: Pki, **settings: Any) -> tuple[EmbeddedBroker, int]:
    broker = factory(listeners="SSL://127.0.0.1:0", **pki.settings(**settings))
    return broker, broker.app.listener_port("SSL")


def _mutual_tls_broker(factory: Factory, pki: Pki, caplog: pytest.LogCaptureFixture) -> int:
    """A broker requiring client certificates, mapping the service users' to their names (its
    connection log at DEBUG): its SSL port."""
    caplog.set_level(logging.DEBUG, logger="shoal.server.kafka")
    _, port = tls_broker(
        factory, pki, ssl_client_auth="required", ssl_principal_mapping_rules=ServiceRules
    )
    return port


REFUSALS: Final = frozenset(  # see CPython gh-98078 below
    {
        "closed",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
    }
)
"""How a refused TLS client sees its refusal: asyncio's TLS layer (CPython 3.11) closes the
connection on a failed handshake without flushing OpenSSL's alert (CPython gh-98078, fixed in
later releases), so the client mostly sees the connection closed rather than the alert Kafka's
JVM would send."""


def tls_refusal(port: int, pki: Pki, client: ClientCert | None) -> str:
    """How a client (Python's ssl, with ``client``'s certificate) is refused: the TLS alert
    it got, or "closed"; under TLS 1.3 it shows on the first read after the handshake."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(API_VERSIONS_V0)
                answer = tls.recv(4096)
        except ssl.SSLError as exc:
            return str(exc.reason)
        except ConnectionError:
            return "closed"
    assert answer == b"", f"the broker answered a refused client: {answer!r}"
    return "closed"


def test_confluent_kafka_produces_and_consumes_over_ssl(
    shoal_broker_factory: Factory, pki: Pki
) -> None:
    _, port = tls_broker(shoal_broker_factory, pki)
    values = round_trip(pki.librdkafka(port), "tls-round-trip")
    assert values == [f"record-{i}".encode() for i in range(10)]


def test_mutual_tls_refuses_clients_without_a_trusted_certificate(
    shoal_broker_factory: Factory, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = _mutual_tls_broker(shoal_broker_factory, pki, caplog)
    # No certificate at all.
    refused(pki.librdkafka(port))
    assert tls_refusal(port, pki, None) in REFUSALS
    # A certificate from another CA.
    stranger = Pki(tmp_path / "other-ca").client(
        "mallory", common_name="mallory", unit="ServiceUsers"
    )
    refused(pki.librdkafka(port, **stranger.librdkafka()))
    assert tls_refusal(port, pki, stranger) in REFUSALS
    assert "User:mallory" not in caplog.text, "a refused client was accepted"

    # Signed by the trusted CA: served, with the principal its subject maps to.
    alice = pki.client("alice", common_name="Alice", unit="ServiceUsers")
    assert round_trip(pki.librdkafka(port, **alice.librdkafka()), "mtls-alice", 3)
    assert re.search(r"TLS client 127\.0\.0\.1:\d+ on listener SSL is User:alice\b", caplog.text)
    # No rule but DEFAULT matches: the subject in Kafka's RFC 2253 form, most specific first.
    bob = pki.client("bob", common_name="bob", unit="Ops")
    AdminClient(pki.librdkafka(port, **bob.librdkafka())).list_topics(timeout=TIMEOUT_S)
    assert "is User:CN=bob,OU=Ops,O=Acme" in caplog.text


def test_a_certificate_no_mapping_rule_matches_is_refused(
    shoal_broker_factory: Factory, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="shoal.server.kafka")
    _, port = tls_broker(
        shoal_broker_factory,
        pki,
        ssl_client_auth="required",
        # The first rule maps the broker's own certificate, which its schema registry
        # presents (as a Kafka broker's certificate must map for inter-broker connections).
        ssl_principal_mapping_rules="RULE:^CN=shoal-broker,.*$/broker/,"
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
    )
    carol = pki.client("carol", common_name="carol", unit="Elsewhere")
    refused(pki.librdkafka(port, **carol.librdkafka()))
    assert "refusing TLS client" in caplog.text
    assert "no ssl.principal.mapping.rules rule applies to CN=carol,OU=Elsewhere" in caplog.text


def test_requested_client_auth_serves_clients_with_and_without_a_certificate(
    shoal_broker_factory: Factory, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="shoal.server.kafka")
    _, port = tls_broker(shoal_broker_factory, pki, ssl_client_auth="requested")
    AdminClient(pki.librdkafka(port)).list_topics(timeout=TIMEOUT_S)
    assert "is User:ANONYMOUS" in caplog.text
    dave = pki.client("dave", common_name="dave", unit="Ops")
    AdminClient(pki.librdkafka(port, **dave.librdkafka())).list_topics(timeout=TIMEOUT_S)
    assert "is User:CN=dave,OU=Ops,O=Acme" in caplog.text


@pytest.fixture(scope="module")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat is not installed: run scripts/peers/kcat.sh (apt-get install kcat)")
    return path


def test_kcat_over_ssl(shoal_broker_factory: Factory, pki: Pki, kcat: str) -> None:
    _, port = tls_broker(shoal_broker_factory, pki)
    common = [
        kcat, "-b", f"127.0.0.1:{port}", "-X", "security.protocol=SSL",
        "-X", f"ssl.ca.location={pki.ca_file}", "-t", "kcat-tls",
    ]  # fmt: skip
    lines = [f"line-{i}" for i in range(5)]
    produced = subprocess.run(
        [*common, "-P"], input="\n".join(lines) + "\n", capture_output=True, text=True,
        timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(
        [*common, "-C", "-o", "beginning", "-e", "-f", "%s\n"], capture_output=True, text=True,
        timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.split() == lines


API_VERSIONS_V0: Final = struct.pack(">ihhih", 10, 18, 0, 1, -1)
"""A plaintext Kafka request: ApiVersions v0, correlation id 1, null client id."""


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the broker sends until it closes the connection (a socket timeout fails)."""
    received = b""
    while True:
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data


def test_a_plaintext_client_on_the_tls_port_is_refused(
    shoal_broker_factory: Factory, pki: Pki
) -> None:
    _, port = tls_broker(shoal_broker_factory, pki)
    refused({"bootstrap.servers": f"127.0.0.1:{port}"})
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(API_VERSIONS_V0)
        answer = read_until_closed(sock)
    # A TLS alert record (content type 21) at most, never a Kafka response.
    assert answer == b"" or answer[0] == 21, answer
    # The broker goes on serving TLS clients.
    AdminClient(pki.librdkafka(port)).list_topics(timeout=TIMEOUT_S)


def test_a_client_that_never_handshakes_is_dropped_and_others_are_served(
    shoal_broker_factory: Factory, pki: Pki
) -> None:
    _, port = tls_broker(shoal_broker_factory, pki, ssl_handshake_timeout_ms=500)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as silent:
        # While it holds its connection open and says nothing, others are served...
        AdminClient(pki.librdkafka(port)).list_topics(timeout=TIMEOUT_S)
        # ...and the broker closes it once the handshake timeout has passed.
        assert read_until_closed(silent) == b""
    assert round_trip(pki.librdkafka(port), "after-silent", 2)


def test_changed_certificate_files_are_reloaded_for_new_connections(
    shoal_broker_factory: Factory, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shoal.server.tls")
    _, port = tls_broker(shoal_broker_factory, pki, ssl_reload_check_interval_ms=100)
    first = pki.server_serial
    assert served_serial(port, pki.ca_file) == first
    producer = Producer(pki.librdkafka(port))
    producer.produce("reload", b"before")
    assert producer.flush(TIMEOUT_S) == 0

    second = pki.rotate()
    wait_for(lambda: served_serial(port, pki.ca_file) == second, "the new certificate")
    # The connection made before the rotation keeps going.
    producer.produce("reload", b"after")
    assert producer.flush(TIMEOUT_S) == 0

    # A broken file: an error logged, and the last good certificate still served.
    pki.keystore.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n")
    wait_for(lambda: "TLS certificates not reloaded" in caplog.text, "the reload error")
    assert "ssl_keystore_location" in caplog.text
    assert served_serial(port, pki.ca_file) == second


READY_LINE: Final = re.compile(rb"shoal broker ready: ")


def test_sighup_reloads_the_certificates_of_shoal_broker(pki: Pki, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "tls.toml"
    config.write_text(
        f'listeners = "SSL://127.0.0.1:{port}"\n'
        f'ssl_keystore_location = "{pki.keystore}"\n'
        f'ssl_truststore_location = "{pki.ca_file}"\n'
        # Polling would find the change too: only the signal may reload here.
        "ssl_reload_check_interval_ms = 3600000\n"
    )
    script = Path(sys.executable).parent / "shoal"
    with subprocess.Popen(
        [
            str(script), "broker", "--config", str(config), "--data-dir", str(tmp_path / "data"),
            "--http-listen", "127.0.0.1:0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as process:  # fmt: skip
        ready: Future[bool] = Future()
        log_lines: list[bytes] = []

        def read_log(stderr: IO[bytes]) -> None:
            for line in stderr:
                log_lines.append(line)
                if not ready.done() and READY_LINE.search(line):
                    ready.set_result(True)
            if not ready.done():
                ready.set_result(False)

        assert process.stderr is not None
        reader = threading.Thread(target=read_log, args=(process.stderr,), daemon=True)
        reader.start()
        try:
            assert ready.result(timeout=60), b"".join(log_lines).decode()
            assert served_serial(port, pki.ca_file) == pki.server_serial
            rotated = pki.rotate()
            os.kill(process.pid, signal.SIGHUP)
            wait_for(lambda: served_serial(port, pki.ca_file) == rotated, "the new certificate")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            reader.join(timeout=60)
    assert process.returncode == 0, b"".join(log_lines).decode()


def test_each_listener_tells_its_clients_its_own_address(
    shoal_broker_factory: Factory, pki: Pki
) -> None:
    ssl_port = free_port()
    broker = shoal_broker_factory(
        listeners=f"PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:{ssl_port}",
        advertised_listeners=f"SSL://localhost:{ssl_port}",
        **pki.settings(),
    )
    plain_port = broker.app.listener_port("PLAINTEXT")
    assert broker.bootstrap_servers == f"127.0.0.1:{plain_port}"

    plain = AdminClient({"bootstrap.servers": f"127.0.0.1:{plain_port}"})
    told = plain.list_topics(timeout=TIMEOUT_S).brokers
    assert [(b.id, b.host, b.port) for b in told.values()] == [(1, "127.0.0.1", plain_port)]
    tls = AdminClient(pki.librdkafka(ssl_port))
    told = tls.list_topics(timeout=TIMEOUT_S).brokers
    assert [(b.id, b.host, b.port) for b in told.values()] == [(1, "localhost", ssl_port)]
    cluster = tls.describe_cluster(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "localhost", ssl_port)]
    # FindCoordinator: each client's group coordinator is on its own listener (a group
    # commit over TLS would fail if it were sent to the plaintext port).
    assert round_trip(pki.librdkafka(ssl_port), "two-listeners-tls", 2)
    assert round_trip({"bootstrap.servers": f"127.0.0.1:{plain_port}"}, "two-listeners", 2)


def java_client_properties(pki: Pki, path: Path, client: ClientCert | None = None) -> Path:
    """A Java client's SSL settings with PEM files (ssl.truststore.type=PEM)."""
    lines = [
        "security.protocol=SSL",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={pki.ca_file}",
    ]
    if client is not None:
        keystore = path.with_suffix(".keystore.pem")
        keystore.write_bytes(pkcs8_keystore(client.key.read_bytes(), client.cert.read_bytes()))
        lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={keystore}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_java_client_over_mutual_tls(
    shoal_broker_factory: Factory, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = _mutual_tls_broker(shoal_broker_factory, pki, caplog)
    erin = pki.client("erin", common_name="Erin", unit="ServiceUsers")
    config = str(java_client_properties(pki, tmp_path / "erin.properties", erin))
    bootstrap = ["--bootstrap-server", f"127.0.0.1:{port}", "--command-config", config]
    ok(kafka_tool(TOPICS, *bootstrap, "--create", "--topic", "java-tls", "--partitions", "2"))
    lines = [f"java-{i}" for i in range(5)]
    ok(
        kafka_tool(
            CONSOLE_PRODUCER, *bootstrap, "--topic", "java-tls", stdin="\n".join(lines) + "\n"
        )
    )
    consumed = ok(
        kafka_tool(
            CONSOLE_CONSUMER, *bootstrap, "--topic", "java-tls", "--from-beginning",
            "--max-messages", "5", "--timeout-ms", "30000",
        )
    )  # fmt: skip
    assert sorted(consumed.split()) == lines
    assert "is User:erin" in caplog.text
    # Without a client certificate the Java client is refused: it never gets Metadata. (It
    # reports a timeout rather than SslAuthenticationException because asyncio's TLS layer
    # drops OpenSSL's alert on a failed handshake: CPython gh-98078, fixed after 3.11.)
    anonymous = java_client_properties(pki, tmp_path / "anonymous.properties")
    with anonymous.open("a") as properties:
        properties.write("default.api.timeout.ms=4000\nrequest.timeout.ms=2000\n")
    result = kafka_tool(
        TOPICS, "--bootstrap-server", f"127.0.0.1:{port}", "--command-config", str(anonymous),
        "--list", timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "SSL" in output or "Timed out waiting for a node assignment" in output, output


def test_tls_1_3_by_default_and_1_2_only_while_enabled(
    shoal_broker_factory: Factory, pki: Pki
) -> None:
    def version(port: int, maximum: ssl.TLSVersion) -> str:
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        context.maximum_version = maximum
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            return str(tls.version())

    _, port = tls_broker(shoal_broker_factory, pki)
    assert version(port, ssl.TLSVersion.MAXIMUM_SUPPORTED) == "TLSv1.3"
    assert version(port, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    _, strict = tls_broker(shoal_broker_factory, pki, ssl_enabled_protocols="TLSv1.3")
    assert version(strict, ssl.TLSVersion.MAXIMUM_SUPPORTED) == "TLSv1.3"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        version(strict, ssl.TLSVersion.TLSv1_2)


def test_an_encrypted_key_with_ssl_key_password(
    shoal_broker_factory: Factory, pki: Pki, tmp_path: Path
) -> None:
    issued = pki.ca.issue_cert("127.0.0.1", common_name="shoal-broker")
    encrypted = tmp_path / "encrypted.pem"
    chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
    encrypted.write_bytes(pkcs8_keystore(issued.private_key_pem.bytes(), chain, password=b"s3cret"))
    with pytest.raises(SettingsError, match="cannot load ssl_keystore_location") as refused:
        tls_broker(shoal_broker_factory, pki, ssl_keystore_location=str(encrypted),
                   ssl_key_password="wrong")  # fmt: skip
    assert "s3cret" not in str(refused.value) and "wrong" not in str(refused.value)
    _, port = tls_broker(
        shoal_broker_factory, pki, ssl_keystore_location=str(encrypted), ssl_key_password="s3cret"
    )
    assert round_trip(pki.librdkafka(port), "encrypted-key", 1)


def test_shoal_broker_refuses_to_start_on_an_unreadable_keystore(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n")
    code, stderr = shoal_broker_command(
        "--data-dir", str(tmp_path / "data"), "--http-listen", "127.0.0.1:0",
        "--listeners", "SSL://127.0.0.1:0", "--ssl-keystore-location", str(broken),
    )  # fmt: skip
    assert code == 1
    assert f"cannot load ssl_keystore_location {broken}" in stderr
    assert "Traceback" not in stderr
