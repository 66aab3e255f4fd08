"""The topics-known wait (shoal.app.transports.kafka_topics_known, issue 21) never fails the
App's start: a cluster that does not answer (a TLS or SASL handshake that takes longer than the
wait, a bootstrap address that accepts connections and says nothing) ends the wait with a
warning within its bound. The wait's behaviour on a real cluster is tested in
tests/peers/cluster/test_topics_known.py."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from shoal.app.transports import kafka_topics_known
from shoal.app.transports.kafka_topics_known import wait_known_everywhere

SILENT_WAIT_S = 1.0
"""The wait's bound in these tests: long enough for a client to connect on loopback."""


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: to a Kafka client, a broker
    stuck in its handshake."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in accepted:
            conn.close()


def test_a_cluster_that_never_answers_ends_the_wait_with_a_warning(
    silent_server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kafka_topics_known, "KNOWN_WAIT_S", SILENT_WAIT_S)
    with caplog.at_level(logging.WARNING, logger="shoal.app.transports.kafka"):
        wait_known_everywhere({"bootstrap.servers": silent_server}, ["orders"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("could not check that every broker knows ['orders']")
    assert "starting anyway" in warnings[0]
