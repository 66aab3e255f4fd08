"""The admin API's ACL and SCRAM user changes (issue 17): their blocking work (salting, the
file write and fsync) runs off the event loop, so a save that hangs does not stall the health
probe the same loop answers; an unauthorized caller is refused before any validation; an empty
ACL host is refused as ``shoal console`` refuses it.

The broker runs in-process behind the HTTP app, as the server builds it, on a file system whose
save of the ACL or user file waits until the test lets it finish.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.handlers import HANDLERS
from shoal.console.errors import ConsoleError
from shoal.console.security_changes import binding as console_binding
from shoal.security.acl_authorizer import AuthorizerConfig
from shoal.security.acl_store import ACLS_FILE
from shoal.security.scram_store import SCRAM_CREDENTIALS_FILE
from shoal.server.admin import build_admin_app
from shoal.server.admin.access import ANONYMOUS, CSRF_HEADER
from shoal.server.http import build_http_app
from shoal.storage import LogManager
from shoal.storage.fs import OsFileSystem

# starlette's test client warns at import that httpx is deprecated (see tests/registry/conftest.py).
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.integration

HELD_S_MAX: Final = 20.0
"""How long a held save waits for the test's go-ahead at most (then it fails the save)."""
ACL: Final = {
    "resource_type": "TOPIC",
    "resource_name": "orders",
    "principal": "User:alice",
    "operation": "READ",
}


class HeldSaves(OsFileSystem):
    """Saves of the ACL and SCRAM files (their atomic rename) wait while ``held``."""

    def __init__(self) -> None:
        super().__init__()
        self.held = False
        self.full = False
        """Saves of those files fail as on a full disk."""
        self.saving = threading.Event()
        self.go_ahead = threading.Event()

    def rename(self, src: str, dst: str) -> None:
        if self.full and os.path.basename(dst) in (ACLS_FILE, SCRAM_CREDENTIALS_FILE):
            raise OSError(28, "No space left on device")
        if self.held and os.path.basename(dst) in (ACLS_FILE, SCRAM_CREDENTIALS_FILE):
            self.saving.set()
            if not self.go_ahead.wait(HELD_S_MAX):
                raise OSError("the test never let this save finish")
        super().rename(src, dst)


def _broker(data_dir: Path, fs: HeldSaves | None, config: AuthorizerConfig) -> Broker:
    logs = LogManager.open(str(data_dir))
    return Broker(BrokerSettings(authorizer=config), logs, handlers=HANDLERS, fs=fs)


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[HeldSaves, Broker, TestClient]]:
    fs = HeldSaves()
    broker = _broker(tmp_path, fs, AuthorizerConfig(super_users=frozenset({ANONYMOUS})))
    app = build_http_app(lambda: (True, "ready"), admin=build_admin_app(lambda: broker))
    # As a context manager: every request runs on the one event loop of its portal, as they
    # do on the server's.
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.headers[CSRF_HEADER] = "1"
        yield fs, broker, client
    fs.go_ahead.set()
    broker.logs.close()


def _while_saving(
    fs: HeldSaves, client: TestClient, change: Callable[[], httpx.Response]
) -> httpx.Response:
    """Run ``change`` until its save is held; probe /livez meanwhile; then let it finish."""
    fs.held, answers = True, []
    fs.saving.clear()
    fs.go_ahead.clear()
    worker = threading.Thread(target=lambda: answers.append(change()), daemon=True)
    worker.start()
    assert fs.saving.wait(HELD_S_MAX), "the change never reached its save"
    # The save is in progress: the event loop must still answer. Were the save on the loop,
    # this would wait until the held save gave up, and the change would then fail.
    probe = client.get("/livez")
    assert probe.status_code == 200
    assert not fs.go_ahead.is_set() and worker.is_alive()
    fs.go_ahead.set()
    worker.join(HELD_S_MAX)
    fs.held = False
    assert answers, "the change never answered"
    return answers[0]


def test_acl_and_user_changes_do_not_stall_the_event_loop(
    held: tuple[HeldSaves, Broker, TestClient],
) -> None:
    fs, broker, client = held
    created = _while_saving(fs, client, lambda: client.post("/api/v1/acls", json=ACL))
    assert created.status_code == 201, created.text
    assert [a["resource_name"] for a in client.get("/api/v1/acls").json()["acls"]] == ["orders"]

    deleted = _while_saving(fs, client, lambda: client.request("DELETE", "/api/v1/acls", json=ACL))
    assert deleted.status_code == 200, deleted.text
    assert client.get("/api/v1/acls").json()["acls"] == []

    password = {"mechanism": "SCRAM-SHA-512", "password": "alice-secret"}
    user_set = _while_saving(fs, client, lambda: client.put("/api/v1/users/alice", json=password))
    assert user_set.status_code == 200, user_set.text
    assert broker.scram_credentials.check_password("alice", "alice-secret")

    user_gone = _while_saving(
        fs,
        client,
        lambda: client.delete("/api/v1/users/alice", params={"mechanism": "SCRAM-SHA-512"}),
    )
    assert user_gone.status_code == 200, user_gone.text
    assert broker.scram_credentials.users() == []


def test_an_unauthorized_caller_learns_nothing_from_validation(tmp_path: Path) -> None:
    broker = _broker(tmp_path, None, AuthorizerConfig())  # anonymous may do nothing
    app = build_http_app(lambda: (True, "ready"), admin=build_admin_app(lambda: broker))
    bad_bodies: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/v1/acls", {"resource_type": "BOGUS"}),
        ("DELETE", "/api/v1/acls", {}),
        ("PUT", "/api/v1/users/alice", {"mechanism": "MD5", "password": ""}),
        ("PUT", "/api/v1/users/__shoal_internal", {"mechanism": "SCRAM-SHA-256"}),
    ]
    try:
        with TestClient(app, headers={CSRF_HEADER: "1"}) as client:
            for method, path, body in bad_bodies:
                refused = client.request(method, path, json=body)
                assert refused.status_code == 403, (path, refused.text)
                assert refused.json()["error"] == "cluster_authorization_failed"
            refused = client.delete("/api/v1/users/alice", params={"mechanism": "MD5"})
            assert refused.status_code == 403, refused.text
            refused = client.post("/api/v1/acls", content=b"not json", headers={
                "content-type": "application/json"
            })  # fmt: skip
            assert refused.status_code == 403, refused.text
    finally:
        broker.logs.close()


def test_an_empty_acl_host_is_refused_by_both_backends(
    held: tuple[HeldSaves, Broker, TestClient],
) -> None:
    _, broker, client = held
    refused = client.post("/api/v1/acls", json={**ACL, "host": ""})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_field"
    assert broker.acls is not None and len(broker.acls.authorizer) == 0
    with pytest.raises(ConsoleError) as console_refusal:
        console_binding({**ACL, "host": ""})
    assert (console_refusal.value.status, console_refusal.value.slug) == (400, "invalid_field")


def test_a_change_that_cannot_be_saved_is_a_503_and_changes_nothing(
    held: tuple[HeldSaves, Broker, TestClient],
) -> None:
    """The broker could not save (not the caller's mistake): 503 with the API's JSON error,
    so the same request can be tried again later; nothing counts meanwhile."""
    fs, broker, client = held
    fs.full = True
    acl = client.post("/api/v1/acls", json=ACL)
    assert acl.status_code == 503, acl.text
    assert acl.json()["error"] == "kafka_storage_error"
    assert broker.acls is not None and len(broker.acls.authorizer) == 0
    password = {"mechanism": "SCRAM-SHA-512", "password": "alice-secret"}
    user = client.put("/api/v1/users/alice", json=password)
    assert user.status_code == 503, user.text
    assert user.json()["error"] == "kafka_storage_error"
    assert broker.scram_credentials.users() == []
