"""``shoal console`` survives librdkafka's abort (librdkafka issue 4605): its consumer-group
requests run in a worker process; a worker that dies or hangs gets that request a 503 naming
what happened, is replaced, and the next request is answered. The other pages never wait for it.

The abort is delivered as librdkafka delivers it, SIGABRT to the process; a hang is a worker
stopped with SIGSTOP (it never answers, as one stuck on a dead coordinator)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Final

import httpx
import pytest

from shoal.console.group_requests import UNAVAILABLE
from shoal.console.web import Backend
from shoal.embedded import EmbeddedBroker
from tests.console.support import console_server
from tests.console.test_console_process import CSRF, _group_run, _produce
from tests.server.admin_support import TIMEOUT_S, eventually

pytestmark = pytest.mark.integration

GROUP_WAIT_S: Final = 3.0
"""The worker's wait for an answer here: short, so a hung worker is given up on quickly."""
TOPIC: Final = "worker-topic"
GROUP: Final = "worker-group"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    started = EmbeddedBroker(
        str(tmp_path_factory.mktemp("console-worker")), group_initial_rebalance_delay_ms=0
    ).start()
    yield started
    started.stop()


@pytest.fixture
def console(broker: EmbeddedBroker) -> Iterator[tuple[httpx.Client, Backend]]:
    backend = Backend({"bootstrap.servers": broker.bootstrap_servers}, group_wait_s=GROUP_WAIT_S)
    with (
        console_server(broker.bootstrap_servers, backend=backend) as url,
        httpx.Client(base_url=url, headers=CSRF, timeout=TIMEOUT_S) as client,
    ):
        if client.get(f"/api/v1/topics/{TOPIC}").status_code == 404:
            assert client.post("/api/v1/topics", json={"name": TOPIC}).status_code == 201
            _produce(broker.bootstrap_servers, TOPIC, [{"value": b"v", "partition": 0}] * 3)
            _group_run(broker.bootstrap_servers, TOPIC, GROUP, 3)
        yield client, backend


def _committed(client: httpx.Client) -> list[int]:
    answer = client.get(f"/api/v1/groups/{GROUP}")
    assert answer.status_code == 200, answer.text
    return [o["committed_offset"] for o in answer.json()["offsets"]]


def _signal_worker(client: httpx.Client, backend: Backend, signum: int) -> int:
    """Once the group page answers (its worker started), ``signum`` to that worker."""
    assert _committed(client) == [3]
    pid = backend.admin.groups.worker.pid
    assert pid is not None
    os.kill(pid, signum)
    return pid


def test_an_aborted_worker_answers_503_then_the_group_page_recovers(
    console: tuple[httpx.Client, Backend],
) -> None:
    client, backend = console
    first = _signal_worker(client, backend, signal.SIGABRT)
    worker = backend.admin.groups.worker
    eventually(lambda: not worker.alive(), "the worker to die")

    failed = client.get(f"/api/v1/groups/{GROUP}")
    assert failed.status_code == 503, failed.text
    assert failed.json()["error"] == UNAVAILABLE
    message = failed.json()["message"]
    assert f"process ended (exit code {-signal.SIGABRT})" in message
    assert "librdkafka issue 4605" in message and "try again" in message

    assert _committed(client) == [3]  # a new worker answers
    assert worker.pid != first
    listed = client.get("/api/v1/groups")
    assert listed.status_code == 200
    assert GROUP in [g["group_id"] for g in listed.json()["groups"]]


def test_a_hung_worker_answers_503_while_other_pages_answer_then_recovers(
    console: tuple[httpx.Client, Backend],
) -> None:
    client, backend = console
    stuck = _signal_worker(client, backend, signal.SIGSTOP)
    answers: list[httpx.Response] = []
    request = threading.Thread(target=lambda: answers.append(client.get(f"/api/v1/groups/{GROUP}")))
    request.start()
    try:
        # While the group request waits on the stuck worker, the topic pages answer.
        topics = client.get("/api/v1/topics")
        assert topics.status_code == 200
        assert TOPIC in [t["name"] for t in topics.json()["topics"]]
    finally:
        request.join(TIMEOUT_S)
    (failed,) = answers
    assert failed.status_code == 503, failed.text
    assert failed.json()["error"] == UNAVAILABLE
    assert f"gave no answer within {GROUP_WAIT_S:g} s" in failed.json()["message"]
    assert _committed(client) == [3]
    assert not _alive(stuck)  # the stopped one was killed, not left behind


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_reset_commits_through_the_worker(console: tuple[httpx.Client, Backend]) -> None:
    client, _ = console
    body = {"topic": TOPIC, "to": "offset", "value": 1, "dry_run": False}
    applied = client.post(f"/api/v1/groups/{GROUP}/offsets/reset", json=body)
    assert applied.status_code == 200, applied.text
    assert _committed(client) == [1]
    back = client.post(f"/api/v1/groups/{GROUP}/offsets/reset", json={**body, "value": 3})
    assert back.status_code == 200
    assert _committed(client) == [3]
