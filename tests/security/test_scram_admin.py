"""DescribeUserScramCredentials / AlterUserScramCredentials from confluent-kafka's AdminClient:
users created over the wire can log in; Kafka's per-user errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from shoal.embedded import EmbeddedBroker
from shoal.security.scram_store import SCRAM_CREDENTIALS_FILE
from tests.support.sasl import add_user, auth_error, client_config, start_sasl_broker

pytestmark = pytest.mark.integration
TIMEOUT_S = 30

SHA512 = ScramMechanism.SCRAM_SHA_512
SHA256 = ScramMechanism.SCRAM_SHA_256


def _upsert(user: str, password: str, mechanism: Any = SHA512, iterations: int = 8192) -> Any:
    return UserScramCredentialUpsertion(
        user, ScramCredentialInfo(mechanism, iterations), password.encode()
    )


def _results(futures: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for user, future in futures.items():
        try:
            out[user] = future.result(TIMEOUT_S)
        except KafkaException as exc:
            out[user] = exc.args[0].code()
    return out


@pytest.fixture
def admin_broker(
    sasl_broker_factory: Callable[..., EmbeddedBroker],
) -> tuple[EmbeddedBroker, AdminClient]:
    broker = sasl_broker_factory()
    add_user(broker, "admin", "admin-secret")
    admin = AdminClient(client_config(broker, "SCRAM-SHA-512", "admin", "admin-secret"))
    return broker, admin


def test_create_describe_log_in_delete(
    admin_broker: tuple[EmbeddedBroker, AdminClient], tmp_path: Path
) -> None:
    broker, admin = admin_broker
    results = _results(
        admin.alter_user_scram_credentials(
            [_upsert("alice", "alice-secret"), _upsert("bob", "bob-secret", SHA256, 4096)]
        )
    )
    assert results == {"alice": None, "bob": None}
    described = admin.describe_user_scram_credentials(["alice", "bob"])
    alice = described["alice"].result(TIMEOUT_S)
    assert [(i.mechanism, i.iterations) for i in alice.scram_credential_infos] == [(SHA512, 8192)]
    everyone = admin.describe_user_scram_credentials().result(TIMEOUT_S)
    assert set(everyone) == {"admin", "alice", "bob"}  # shoal's internal user is not listed

    # The new user logs in with the password the client salted.
    other = AdminClient(client_config(broker, "SCRAM-SHA-512", "alice", "alice-secret"))
    assert other.list_topics(timeout=TIMEOUT_S) is not None
    # ... and PLAIN checks the same credential.
    # (the stored file holds no password)
    data_dir = Path(broker.app.settings.data_dir)
    stored = (data_dir / SCRAM_CREDENTIALS_FILE).read_text()
    assert "alice-secret" not in stored and "alice" in json.loads(stored)["users"]

    deleted = _results(
        admin.alter_user_scram_credentials([UserScramCredentialDeletion("alice", SHA512)])
    )
    assert deleted == {"alice": None}
    error = auth_error(client_config(broker, "SCRAM-SHA-512", "alice", "alice-secret"))
    assert error.code() == KafkaError._AUTHENTICATION


def test_per_user_errors(admin_broker: tuple[EmbeddedBroker, AdminClient]) -> None:
    broker, admin = admin_broker
    add_user(broker, "twice", "twice-secret")
    results = _results(
        admin.alter_user_scram_credentials(
            [
                _upsert("few", "x", iterations=4095),
                _upsert("many", "x", iterations=16385),
                UserScramCredentialDeletion("ghost", SHA512),
                # Deletions are checked first (as in Kafka's ScramControlManager): "twice"
                # exists, so its deletion passes, and the upsertion then finds it taken.
                _upsert("twice", "x"),
                UserScramCredentialDeletion("twice", SHA512),
                _upsert("fine", "fine-secret"),
            ]
        )
    )
    assert results == {
        "few": KafkaError.UNACCEPTABLE_CREDENTIAL,
        "many": KafkaError.UNACCEPTABLE_CREDENTIAL,
        "ghost": KafkaError.RESOURCE_NOT_FOUND,
        "twice": KafkaError.DUPLICATE_RESOURCE,
        "fine": None,
    }
    described = _results(admin.describe_user_scram_credentials(["fine", "few", "ghost"]))
    assert described["few"] == KafkaError.RESOURCE_NOT_FOUND
    assert described["ghost"] == KafkaError.RESOURCE_NOT_FOUND
    assert described["fine"] is not None and not isinstance(described["fine"], int)


def test_credentials_survive_a_restart(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    broker = start_sasl_broker(lambda **settings: EmbeddedBroker(data_dir, **settings).start())
    try:
        add_user(broker, "alice", "alice-secret")
    finally:
        broker.stop()
    restarted = start_sasl_broker(lambda **settings: EmbeddedBroker(data_dir, **settings).start())
    try:
        admin = AdminClient(client_config(restarted, "SCRAM-SHA-512", "alice", "alice-secret"))
        assert admin.list_topics(timeout=TIMEOUT_S) is not None
    finally:
        restarted.stop()
