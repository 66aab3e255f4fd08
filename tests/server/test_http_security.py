"""The HTTP face secured: HTTPS with the listeners' certificate, and HTTP basic against the
broker's SCRAM users (the registry, metrics and readiness; /livez stays open)."""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from shoal.embedded import EmbeddedBroker
from tests.server.tls_support import Pki
from tests.support.sasl import add_user, start_sasl_broker

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
    client = SchemaRegistryClient(
        {
            "url": broker.http_url,
            "basic.auth.user.info": "alice:alice-secret",
            "ssl.ca.location": str(pki.ca_file),
        }
    )
    schema_id = client.register_schema("orders-value", Schema(SCHEMA, "AVRO"))
    assert client.get_schema(schema_id).schema_str is not None
    anonymous = SchemaRegistryClient({"url": broker.http_url, "ssl.ca.location": str(pki.ca_file)})
    with pytest.raises(Exception, match=r"401|Unauthorized"):
        anonymous.get_subjects()
