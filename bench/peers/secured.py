"""The secured rows of compare.py: shoal and Apache Kafka on a SASL_SSL listener (SCRAM-SHA-512
over TLS 1.3), both given the same certificate and the same user.

Each broker also has a PLAINTEXT listener on loopback, used only to create the SCRAM user before
the run (the first user of a SASL-only broker cannot log in to create itself); every measured
byte goes over SASL_SSL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import trustme
from bench.peers.systems import shoal_process
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from tests.peers.kafka_peer import KafkaPeer, free_port
from tests.server.tls_support import pkcs8_keystore

USER: Final = "bench"
PASSWORD: Final = "bench-secret-password"
ITERATIONS: Final = 8192
START_TIMEOUT_S: Final = 60.0
"""How long the user creation may keep retrying while the broker settles."""


class Certificates:
    """A CA and a broker certificate for 127.0.0.1, as the PEM files both brokers read."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="shoal bench")
        issued = ca.issue_cert("127.0.0.1", "localhost", common_name="bench-broker")
        self.ca_file = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.keystore = directory / "broker.pem"
        chain = b"".join(c.bytes() for c in issued.cert_chain_pems)
        self.keystore.write_bytes(pkcs8_keystore(issued.private_key_pem.bytes(), chain))

    def client_config(self) -> dict[str, str]:
        """librdkafka's settings of the measured clients."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": USER,
            "sasl.password": PASSWORD,
            "ssl.ca.location": str(self.ca_file),
        }


def create_user(admin_bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": admin_bootstrap, "log_level": 0})
    upsert = UserScramCredentialUpsertion(
        USER,
        ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, ITERATIONS),
        PASSWORD.encode(),
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            for future in admin.alter_user_scram_credentials([upsert]).values():
                future.result(timeout=30)
            return
        except Exception:
            # Kafka's controller may not take it the very moment the broker answers.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def shoal_settings(
    certs: Certificates, *, plaintext: tuple[str, int], sasl_ssl: tuple[str, int]
) -> dict[str, str]:
    """``SHOAL_*`` settings of a broker with a PLAINTEXT and a SASL_SSL listener (SCRAM-SHA-512),
    each given as (listener name, port)."""
    (plain_name, plain_port), (tls_name, tls_port) = plaintext, sasl_ssl
    return {
        "SHOAL_LISTENERS": f"{plain_name}://127.0.0.1:{plain_port},"
        f"{tls_name}://127.0.0.1:{tls_port}",
        "SHOAL_LISTENER_SECURITY_PROTOCOL_MAP": f"{plain_name}:PLAINTEXT,{tls_name}:SASL_SSL",
        "SHOAL_SASL_ENABLED_MECHANISMS": "SCRAM-SHA-512",
        "SHOAL_SSL_KEYSTORE_LOCATION": str(certs.keystore),
    }


@contextmanager
def shoal_sasl_ssl(work: Path, certs: Certificates) -> Iterator[str]:
    """``shoal broker`` with a SASL_SSL listener (SCRAM-SHA-512); yields its address."""
    admin_port, port = free_port(), free_port()
    settings = shoal_settings(certs, plaintext=("ADMIN", admin_port), sasl_ssl=("SASL_SSL", port))
    with shoal_process(work, [], settings):
        create_user(f"127.0.0.1:{admin_port}")
        yield f"127.0.0.1:{port}"


class SaslSslKafka(KafkaPeer):
    """Apache Kafka with a SASL_SSL listener (SCRAM-SHA-512) beside its PLAINTEXT one."""

    def __init__(self, workdir: Path, certs: Certificates) -> None:
        super().__init__(workdir)
        self.sasl_port = free_port()
        self.overrides = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:"
            f"{self.sasl_port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"SASL_SSL://127.0.0.1:{self.sasl_port}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(certs.keystore),
        }


@contextmanager
def kafka_sasl_ssl(work: Path, certs: Certificates) -> Iterator[str]:
    peer = SaslSslKafka(work, certs).start()
    try:
        create_user(peer.bootstrap_servers)
        yield f"127.0.0.1:{peer.sasl_port}"
    finally:
        peer.stop()
