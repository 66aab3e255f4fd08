"""The HTTP face behind authentication: basic and bearer credentials, /livez open."""

from __future__ import annotations

import asyncio
import base64
import warnings

from shoal.server.http import build_http_app
from shoal.server.http_auth import HttpAuthentication

# starlette's test client warns at import that httpx is deprecated (see tests/registry/conftest.py).
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


class CountingPasswords:
    """A user store that counts how often a password is checked (each check is a slow hash
    in the real store)."""

    def __init__(self) -> None:
        self.checks = 0
        self.on_event_loop = 0

    def __call__(self, user: str, password: str) -> bool:
        self.checks += 1
        try:
            asyncio.get_running_loop()
            self.on_event_loop += 1
        except RuntimeError:
            pass  # a worker thread: no loop runs here
        return USERS.get(user) == password


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _client(auth: HttpAuthentication) -> TestClient:
    app = build_http_app(
        lambda: (True, "ready"), metrics=lambda: ("shoal_up 1\n", "text/plain"), authentication=auth
    )
    return TestClient(app)


def test_every_path_but_livez_needs_valid_credentials() -> None:
    passwords = CountingPasswords()
    client = _client(HttpAuthentication(check_password=passwords))

    assert client.get("/livez").status_code == 200
    for path in ("/readyz", "/metrics"):
        refused = client.get(path)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Basic realm="shoal"'
        assert refused.json()["error_code"] == 401
        assert client.get(path, headers=_basic("alice", "wrong")).status_code == 401
        assert client.get(path, headers=_basic("mallory", "alice-secret")).status_code == 401
        assert client.get(path, headers={"Authorization": "Basic !!notbase64"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Digest x"}).status_code == 401
    scraped = client.get("/metrics", headers=_basic("alice", "alice-secret"))
    assert scraped.status_code == 200
    assert scraped.text == "shoal_up 1\n"
    # Hashes ran on worker threads, never on the event loop's thread.
    assert passwords.checks > 0
    assert passwords.on_event_loop == 0


def test_a_verified_password_is_not_hashed_again_on_every_request() -> None:
    passwords = CountingPasswords()
    client = _client(HttpAuthentication(check_password=passwords))
    for _ in range(5):
        assert client.get("/metrics", headers=_basic("bob", "bob-secret")).status_code == 200
    assert passwords.checks == 1
    # A wrong password is never remembered as right, and is checked each time.
    for _ in range(3):
        assert client.get("/metrics", headers=_basic("bob", "bob-wrong")).status_code == 401
    assert passwords.checks == 4


def test_remembered_credentials_expire() -> None:
    now = [0.0]
    passwords = CountingPasswords()
    client = _client(HttpAuthentication(check_password=passwords, clock=lambda: now[0]))
    assert client.get("/metrics", headers=_basic("bob", "bob-secret")).status_code == 200
    now[0] = 61.0
    assert client.get("/metrics", headers=_basic("bob", "bob-secret")).status_code == 200
    assert passwords.checks == 2


def test_a_bearer_token_is_checked_by_the_token_validator() -> None:
    client = _client(
        HttpAuthentication(check_token=lambda token: "svc" if token == "good.jwt.token" else None)
    )
    assert client.get("/readyz", headers={"Authorization": "Bearer good.jwt.token"}).json() == {
        "ready": True,
        "detail": "ready",
    }
    refused = client.get("/readyz", headers={"Authorization": "Bearer forged"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="shoal"'


def test_with_no_credentials_configured_nothing_is_asked() -> None:
    client = _client(HttpAuthentication())
    assert client.get("/metrics").status_code == 200


def test_a_change_to_the_users_forgets_remembered_passwords() -> None:
    version = [0]
    passwords = CountingPasswords()
    client = _client(
        HttpAuthentication(check_password=passwords, credentials_version=lambda: version[0])
    )
    assert client.get("/metrics", headers=_basic("bob", "bob-secret")).status_code == 200
    assert client.get("/metrics", headers=_basic("bob", "bob-secret")).status_code == 200
    assert passwords.checks == 1
    version[0] += 1  # e.g. bob's password changed: the next request is checked again
    USERS["bob"] = "bob-renewed"
    try:
        assert client.get("/metrics", headers=_basic("bob", "bob-secret")).status_code == 401
        assert passwords.checks == 2
    finally:
        USERS["bob"] = "bob-secret"
