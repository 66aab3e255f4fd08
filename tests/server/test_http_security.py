"""The HTTP face secured: HTTPS with the listeners' certificate, and HTTP basic against the
broker's SCRAM users (the registry, metrics and readiness; /livez stays open)."""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from shoal.embedded import EmbeddedBroker
from tests.server.tls_support import Pki
from tests.support.sasl import add_user, client_config, start_sasl_broker

with warnings.catch_warnings():  # authlib warns at import (see tests/registry/conftest.py)
    warnings.simplefilter("ignore")
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

pytestmark = pytest.mark.integration

SCHEMA = '{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}'


def _secured(factory: Callable[..., EmbeddedBroker], pki: Pki) -> EmbeddedBroker:
    broker = start_sasl_broker(
        factory, http_authentication="basic", http_ssl=True, **pki.settings()
    )
    add_user(broker, "alice", "alice-secret")
    return broker


def test_https_and_basic_auth_guard_everything_but_livez(
    shoal_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    broker = _secured(shoal_broker_factory, pki)
    assert broker.http_url.startswith("https://")
    with httpx.Client(
        base_url=broker.http_url, verify=ssl.create_default_context(cafile=str(pki.ca_file))
    ) as http:
        assert http.get("/livez").status_code == 200
        for path in ("/readyz", "/metrics", "/subjects"):
            refused = http.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == 'Basic realm="shoal"'
            assert http.get(path, auth=("alice", "wrong")).status_code == 401
            assert http.get(path, auth=("mallory", "alice-secret")).status_code == 401
            assert http.get(path, auth=("alice", "alice-secret")).status_code == 200, path
    # Plain HTTP on the HTTPS port gets nothing useful.
    with httpx.Client(base_url=broker.http_url.replace("https", "http")) as plain:
        with pytest.raises(httpx.HTTPError):
            plain.get("/livez").raise_for_status()


def test_the_schema_registry_client_logs_in_with_basic_auth(
    shoal_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    broker = _secured(shoal_broker_factory, pki)
    trusted = {"url": broker.http_url, "ssl.ca.location": str(pki.ca_file)}
    with SchemaRegistryClient({**trusted, "basic.auth.user.info": "alice:alice-secret"}) as client:
        schema_id = client.register_schema("orders-value", Schema(SCHEMA, "AVRO"))
        assert client.get_schema(schema_id).schema_str is not None
    with (
        SchemaRegistryClient(trusted) as anonymous,
        pytest.raises(Exception, match=r"401|Unauthorized"),
    ):
        anonymous.get_subjects()


def test_the_registry_authorizes_each_subject_by_its_topics_acls(
    shoal_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    broker = start_sasl_broker(
        shoal_broker_factory,
        http_authentication="basic",
        authorizer_class_name="standard",
        super_users="User:admin",
        **pki.settings(),
    )
    for user in ("admin", "alice", "bob"):
        add_user(broker, user, f"{user}-secret")
    admin = AdminClient(client_config(broker, "SCRAM-SHA-512", "admin", "admin-secret"))
    grants = [
        AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.WRITE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:bob", "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
    ]  # fmt: skip
    for future in admin.create_acls(grants).values():
        future.result(timeout=30)

    body = {"schema": SCHEMA}
    with httpx.Client(base_url=broker.http_url) as http:
        alice, bob, boss = (
            ("alice", "alice-secret"),
            ("bob", "bob-secret"),
            ("admin", "admin-secret"),
        )
        # Write on the topic: register its subjects' schemas; nothing else.
        assert http.post("/subjects/orders-value/versions", json=body, auth=alice).is_success
        denied = http.post("/subjects/payroll-value/versions", json=body, auth=alice)
        assert denied.status_code == 403
        assert denied.json()["error_code"] == 40301
        assert http.post("/subjects/payroll-value/versions", json=body, auth=boss).is_success
        # Read on the topic: read its schemas, never register.
        assert http.get("/subjects/orders-value/versions/1", auth=bob).is_success
        assert http.post("/subjects/orders-value/versions", json=body, auth=bob).status_code == 403
        assert http.get("/subjects/payroll-value/versions", auth=bob).status_code == 403
        # Listings name only what the principal may read.
        assert http.get("/subjects", auth=bob).json() == ["orders-value"]
        assert sorted(http.get("/subjects", auth=boss).json()) == ["orders-value", "payroll-value"]
        # The global config: AlterConfigs on the cluster.
        change = {"compatibility": "FULL"}
        assert http.put("/config", json=change, auth=alice).status_code == 403
        assert http.put("/config", json=change, auth=boss).is_success


def test_a_changed_password_or_a_deleted_user_loses_http_access_at_once(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    """A verified password is remembered (http_auth.REMEMBER_S), but only until the users
    change: a new Kafka SASL login would be refused at once, and so is the next HTTP request
    (issue 17)."""
    broker = start_sasl_broker(shoal_broker_factory, http_authentication="basic")
    for user in ("alice", "bob"):
        add_user(broker, user, f"{user}-secret")
    admin = AdminClient(client_config(broker, "SCRAM-SHA-512", "bob", "bob-secret"))

    def alter(change: UserScramCredentialAlteration) -> None:
        for future in admin.alter_user_scram_credentials([change]).values():
            future.result(timeout=30)

    with httpx.Client(base_url=broker.http_url, timeout=30) as http:
        old, new = ("alice", "alice-secret"), ("alice", "alice-renewed")
        assert http.get("/readyz", auth=old).status_code == 200  # verified: remembered now
        mechanisms = (ScramMechanism.SCRAM_SHA_512, ScramMechanism.SCRAM_SHA_256)
        # One alteration per request: Kafka refuses two for one user (DUPLICATE_RESOURCE).
        for m in mechanisms:
            alter(
                UserScramCredentialUpsertion(
                    "alice", ScramCredentialInfo(m, 4096), b"alice-renewed"
                )
            )
        assert http.get("/readyz", auth=old).status_code == 401
        assert http.get("/readyz", auth=new).status_code == 200
        for m in mechanisms:
            alter(UserScramCredentialDeletion("alice", m))
        assert http.get("/readyz", auth=new).status_code == 401
        assert http.get("/readyz", auth=("bob", "bob-secret")).status_code == 200
