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
from types import SimpleNamespace

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


class RoutedAdmin:
    """A stand-in for confluent-kafka's AdminClient on a 2-broker cluster where librdkafka sends
    every request about ``KNOWN`` from broker 1's client to broker 2 (it may: it cannot
    address a Metadata request to a chosen broker). Both brokers know ``KNOWN``; neither knows
    ``NEVER``. The real client's routing is exercised in tests/peers/cluster/."""

    BROKERS = {1: "127.0.0.1:9001", 2: "127.0.0.1:9002"}

    def __init__(self, config: dict[str, object]) -> None:
        address = str(config["bootstrap.servers"])
        self.bootstrap = next((b for b, a in self.BROKERS.items() if a == address), None)

    def list_topics(self, topic: str, timeout: float) -> object:
        answerer = 2 if topic == KNOWN or self.bootstrap is None else self.bootstrap
        partitions = {0: object()} if topic == KNOWN else {}
        brokers = {
            b: SimpleNamespace(id=b, host=a.split(":")[0], port=int(a.split(":")[1]))
            for b, a in self.BROKERS.items()
        }
        listed = SimpleNamespace(error=None, partitions=partitions)
        return SimpleNamespace(
            brokers=brokers, orig_broker_id=answerer, topics={topic: listed} if partitions else {}
        )


KNOWN = "known"
NEVER = "never-created"


def test_a_broker_is_reported_only_for_the_topics_it_said_it_does_not_know(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Broker 1 was never asked about KNOWN (every such request went to broker 2): the warning
    names only NEVER for it, not a topic it gave no sign of lacking (a CI run once printed
    "broker 1 still does not know ['known-…', 'never-created']" for a topic every broker knew)."""
    monkeypatch.setattr(kafka_topics_known, "AdminClient", RoutedAdmin)
    monkeypatch.setattr(kafka_topics_known, "KNOWN_WAIT_S", SILENT_WAIT_S)
    with caplog.at_level(logging.WARNING, logger="shoal.app.transports.kafka"):
        wait_known_everywhere({"bootstrap.servers": RoutedAdmin.BROKERS[1]}, [KNOWN, NEVER])
    warnings = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert warnings == [
        f"broker 127.0.0.1:9001 (id 1) still does not know ['{NEVER}'] after 1 s; starting anyway",
        f"broker 127.0.0.1:9002 (id 2) still does not know ['{NEVER}'] after 1 s; starting anyway",
    ]
