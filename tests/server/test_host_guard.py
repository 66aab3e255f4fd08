"""An HTTP face bound to loopback answers only requests for a loopback Host (DNS rebinding:
a page of another site whose name now resolves to 127.0.0.1 gets 421, and nothing changes)."""

from __future__ import annotations

import warnings

import httpx
import pytest

from shoal.embedded import EmbeddedBroker
from shoal.server.host_guard import host_of, is_loopback
from shoal.server.http import build_http_app

# starlette's test client warns at import that httpx is deprecated (see tests/registry/conftest.py).
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("127.0.0.1:8080", True),
        ("127.3.4.5", True),
        ("localhost:8080", True),
        ("LOCALHOST.", True),
        ("console.localhost:9000", True),
        ("[::1]:8080", True),
        ("attacker.example:8080", False),
        ("attacker.example", False),
        ("10.0.0.1:8080", False),
        ("[::2]:8080", False),
        ("", False),
        ("localhost.attacker.example", False),
    ],
)
def test_loopback_hosts(header: str, allowed: bool) -> None:
    assert is_loopback(host_of(header)) is allowed


def _app(loopback_only: bool) -> TestClient:
    return TestClient(
        build_http_app(lambda: (True, "ok"), loopback_only=loopback_only),
        base_url="http://attacker.example",
    )


def test_a_guarded_face_refuses_another_host_and_serves_loopback() -> None:
    client = _app(loopback_only=True)
    refused = client.get("/readyz")
    assert refused.status_code == 421
    assert "loopback only" in refused.text
    assert client.get("/readyz", headers={"Host": "127.0.0.1:8080"}).status_code == 200
    assert client.get("/readyz", headers={"Host": "localhost"}).status_code == 200
    # Not guarded (a face bound to another address: its names are the operator's).
    assert _app(loopback_only=False).get("/readyz").status_code == 200


@pytest.mark.integration
def test_the_broker_on_loopback_refuses_a_rebinding_page(shoal_broker: EmbeddedBroker) -> None:
    url = f"{shoal_broker.http_url}/api/v1/topics"
    headers = {"Host": "attacker.example", "X-Shoal-Admin": "1"}
    created = httpx.post(url, headers=headers, json={"name": "rebound", "partitions": 1})
    assert created.status_code == 421
    listed = httpx.get(url).json()
    assert "rebound" not in str(listed)
