"""The same order saga, unchanged, on RabbitMQ, Redis Streams and NATS JetStream: only the
broker URL differs (issue 8). Real servers, started by tests/peers/servers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.examples.saga import CHECKS, run

pytestmark = pytest.mark.integration

SERVERS = {"amqp": "rabbitmq_server", "redis": "redis_server", "nats": "nats_server"}


@pytest.mark.parametrize("transport", sorted(SERVERS))
def test_saga_runs_unchanged_on(
    transport: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server = request.getfixturevalue(SERVERS[transport])
    ran = run(server.url, tmp_path / "work")
    for check in CHECKS:
        check(ran)
