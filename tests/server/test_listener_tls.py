"""Per-listener TLS (Kafka's listener.name.<name>.ssl.*) and ssl.cipher.suites with real
clients: two TLS listeners with different certificates and client-auth rules, each reloaded
on its own; a cipher-suite list that leaves TLS 1.2 with one suite."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from shoal.embedded import EmbeddedBroker
from shoal.server.tls import TlsError
from tests.server.tls_support import Pki, refused, round_trip, served_serial, wait_for
from tests.support.broker import run_on_loop

pytestmark = pytest.mark.integration

Factory = Callable[..., EmbeddedBroker]


def _external_and_internal(
    factory: Factory, shared: Pki, internal: Pki, reload_interval_ms: int, **settings: Any
) -> tuple[EmbeddedBroker, int, int]:
    """Two TLS listeners, EXTERNAL with ``shared``'s certificate and INTERNAL with its own
    (``internal``'s): the broker and the two ports."""
    broker = factory(
        listeners="EXTERNAL://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        listener_security_protocol_map="EXTERNAL:SSL,INTERNAL:SSL",
        ssl_keystore_location=str(shared.keystore),
        ssl_reload_check_interval_ms=reload_interval_ms,
        listener_ssl_keystore_location=f"INTERNAL:{internal.keystore}",
        **settings,
    )
    return broker, broker.app.listener_port("EXTERNAL"), broker.app.listener_port("INTERNAL")


def test_two_tls_listeners_with_their_own_certificates_and_client_auth(
    shoal_broker_factory: Factory, tmp_path: Path
) -> None:
    shared, internal = Pki(tmp_path / "shared"), Pki(tmp_path / "internal")
    _, external_port, internal_port = _external_and_internal(
        shoal_broker_factory,
        shared,
        internal,
        100,
        listener_ssl_truststore_location=f"INTERNAL:{internal.ca_file}",
        listener_ssl_client_auth="INTERNAL:required",
    )
    # Each listener shows its own certificate (each verifies only against its own CA).
    assert served_serial(external_port, shared.ca_file) == shared.server_serial
    assert served_serial(internal_port, internal.ca_file) == internal.server_serial

    # EXTERNAL asks for no certificate; INTERNAL requires one signed by its CA.
    assert round_trip(shared.librdkafka(external_port), "external-topic", 2)
    refused(internal.librdkafka(internal_port))
    service = internal.client("svc", common_name="svc", unit="ServiceUsers")
    config = internal.librdkafka(internal_port, **service.librdkafka())
    assert "external-topic" in AdminClient(config).list_topics(timeout=30).topics

    # A rotated INTERNAL certificate is reloaded for INTERNAL alone.
    rotated = internal.rotate()
    wait_for(lambda: served_serial(internal_port, internal.ca_file) == rotated, "the reload")
    assert served_serial(external_port, shared.ca_file) == shared.server_serial


def test_sighup_reloads_a_listener_s_own_certificate(
    shoal_broker_factory: Factory, tmp_path: Path
) -> None:
    # shoal broker's SIGHUP handler calls reload_certificates; no file watch gets there first.
    shared, internal = Pki(tmp_path / "shared"), Pki(tmp_path / "internal")
    broker, _, internal_port = _external_and_internal(
        shoal_broker_factory, shared, internal, 3_600_000
    )
    rotated = internal.rotate()
    assert served_serial(internal_port, internal.ca_file) != rotated
    assert run_on_loop(broker, broker.app.reload_certificates)
    assert served_serial(internal_port, internal.ca_file) == rotated


def _negotiated(port: int, ca_file: Path, ciphers: str | None = None) -> tuple[str, str]:
    context = ssl.create_default_context(cafile=str(ca_file))
    if ciphers is not None:
        context.set_ciphers(ciphers)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return str(tls.version()), cipher[0]


def test_ssl_cipher_suites_narrows_what_the_listener_offers(
    shoal_broker_factory: Factory, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")  # trustme's keys are ECDSA: so is the suite
    broker = shoal_broker_factory(
        listeners="SSL://127.0.0.1:0",
        ssl_cipher_suites="TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        **pki.settings(),
    )
    port = broker.app.listener_port("SSL")
    # No TLS 1.3 suite named: TLS 1.3 is off, as a Java broker with this list would have it.
    assert _negotiated(port, pki.ca_file) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _negotiated(port, pki.ca_file, "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert round_trip(pki.librdkafka(port), "ciphers", 2)


def test_an_unknown_cipher_suite_stops_the_start(
    shoal_broker_factory: Factory, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    with pytest.raises(TlsError, match="TLS_NO_SUCH_SUITE"):
        shoal_broker_factory(
            listeners="SSL://127.0.0.1:0", ssl_cipher_suites="TLS_NO_SUCH_SUITE", **pki.settings()
        )
