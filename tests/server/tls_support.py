"""Certificates made in the test (trustme), the files shoal and the clients read them from, and
what a client sees of a TLS listener (its certificate's serial, a round trip, a refusal)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import trustme
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from cryptography import x509
from cryptography.hazmat.primitives import serialization

SERVER_NAMES = ("localhost", "127.0.0.1")
SERVER_COMMON_NAME = "shoal-broker"
"""The subject's CN of the broker's certificate, which is also the client certificate of its
own schema registry's connections when clients must present one."""


def pkcs8_keystore(key_pem: bytes, chain_pem: bytes, *, password: bytes | None = None) -> bytes:
    """A PEM keystore as Kafka's ``ssl.keystore.type=PEM`` reads it: the key in PKCS#8
    (encrypted with ``password`` if given), then the certificate chain.

    Kafka reads PKCS#8 keys only, and trustme writes SEC1 ("EC PRIVATE KEY"); shoal reads both.
    """
    key = serialization.load_pem_private_key(key_pem, password=None)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password is not None
        else serialization.NoEncryption()
    )
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return pkcs8 + chain_pem


@dataclass
class ClientCert:
    cert: Path
    key: Path

    def librdkafka(self) -> dict[str, str]:
        return {"ssl.certificate.location": str(self.cert), "ssl.key.location": str(self.key)}


class Pki:
    """A CA, the broker's keystore (key + chain, one PEM) signed by it, and the CA file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA(organization_name="shoal tests")
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.keystore = directory / "server.pem"
        self.server_serial = self.rotate()

    def rotate(self) -> int:
        """A new server certificate into the keystore file; its serial."""
        issued = self.ca.issue_cert(*SERVER_NAMES, common_name=SERVER_COMMON_NAME)
        issued.private_key_and_cert_chain_pem.write_to_path(str(self.keystore))
        self.server_serial = serial_of(issued.cert_chain_pems[0].bytes())
        return self.server_serial

    def client(self, name: str, *, common_name: str, unit: str) -> ClientCert:
        issued = self.ca.issue_cert(
            f"{name}.clients.test",
            common_name=common_name,
            organization_name="Acme",
            organization_unit_name=unit,
        )
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        return ClientCert(cert, key)

    def settings(self, **more: Any) -> dict[str, Any]:
        return {
            "ssl_keystore_location": str(self.keystore),
            "ssl_truststore_location": str(self.ca_file),
            **more,
        }

    def librdkafka(self, port: int, **more: str) -> dict[str, str]:
        return {
            "bootstrap.servers": f"127.0.0.1:{port}",
            "security.protocol": "SSL",
            "ssl.ca.location": str(self.ca_file),
            **more,
        }


def serial_of(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def served_serial(port: int, ca_file: Path) -> int:
    """The serial of the certificate a new TLS connection to ``port`` is shown."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


TIMEOUT_S: Final = 30.0
REFUSED_TIMEOUT_S: Final = 2.5
"""How long a refused client is given to fail (it retries until then). An accepted client has
its Metadata in well under a second here; tls_refusal checks the refusal itself directly."""


def round_trip(config: dict[str, str], topic: str, count: int = 10) -> list[bytes]:
    """Produce ``count`` records and consume them back in a group; the values consumed."""
    producer = Producer(config)
    for i in range(count):
        producer.produce(topic, f"record-{i}".encode())
    assert producer.flush(TIMEOUT_S) == 0
    consumer = Consumer({**config, "group.id": f"{topic}-group", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            values.append(message.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values


def refused(config: dict[str, str]) -> None:
    """The client gets no Metadata: it cannot connect (librdkafka retries until the timeout)."""
    with pytest.raises(KafkaException):
        AdminClient(config).list_topics(timeout=REFUSED_TIMEOUT_S)


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
