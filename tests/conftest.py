"""Fixtures shared by every test package: a real shoal broker, in-process or as a child process.

``shoal_broker``: a started :class:`~shoal.embedded.EmbeddedBroker` on ``tmp_path`` with default
settings. ``shoal_broker_factory(**settings)``: the same with settings of the test's choosing
(``num_partitions``, ``message_max_bytes``, ``flush_policy``...); every broker it starts is
stopped at teardown. ``SHOAL_TEST_EVENT_LOOP=uvloop`` (or ``auto``) runs those brokers on
uvloop, the loop ``shoal broker`` runs on when installed (``event_loop``), instead of asyncio's:
``SHOAL_TEST_EVENT_LOOP=uvloop pytest tests/server/test_tls.py`` checks TLS on both.

``broker_process(**settings)``: a started :class:`~tests.support.broker.BrokerProcess`, the
broker in a child process, for tests that SIGKILL it; killed at teardown.

Fixtures only: helpers that tests import (``create_topic``, ``run_on_loop``, ``BrokerProcess``)
live in plain modules under ``tests/support/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from tests.peers.kafka_peer import KafkaPeer
from tests.peers.servers import nats_server, rabbitmq_server, redis_server
from tests.support.broker import BrokerProcess
from tests.support.peers import PeerGuard, needs_peer
from tests.support.sasl import start_sasl_broker


@pytest.fixture
def shoal_broker_factory(tmp_path: Path) -> Iterator[Callable[..., EmbeddedBroker]]:
    started: list[EmbeddedBroker] = []

    def start(**settings: Any) -> EmbeddedBroker:
        data_dir = tmp_path / f"shoal-{len(started)}"
        settings.setdefault("event_loop", os.environ.get("SHOAL_TEST_EVENT_LOOP", "asyncio"))
        broker = EmbeddedBroker(str(data_dir), **settings).start()
        started.append(broker)
        return broker

    yield start
    for broker in reversed(started):
        broker.stop()


@pytest.fixture
def shoal_broker(shoal_broker_factory: Callable[..., EmbeddedBroker]) -> EmbeddedBroker:
    return shoal_broker_factory()


@pytest.fixture
def sasl_broker_factory(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> Callable[..., EmbeddedBroker]:
    """``sasl_broker_factory(mechanisms=..., **settings)``: a started broker whose Kafka
    listener is SASL_PLAINTEXT (see tests/support/sasl.py); stopped at teardown."""

    def start(**kwargs: Any) -> EmbeddedBroker:
        return start_sasl_broker(shoal_broker_factory, **kwargs)

    return start


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    """A factory: ``broker_process(**settings)`` gives a started :class:`BrokerProcess`."""
    started: list[BrokerProcess] = []

    def start(**settings: Any) -> BrokerProcess:
        process = BrokerProcess(tmp_path / f"shoal-process-{len(started)}", **settings)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


# -- the peer marker: derived, so `make unit` (-m "not peer and not slow") stays peer-free ------


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if needs_peer(item):
            item.add_marker(pytest.mark.peer)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(PeerGuard(), "shoal-peer-guard")


# -- peers: one instance of each per test session ---------------------------------------------
# Defined here, at the root, so every test package shares the same server; a package that
# imported these into its own conftest would get a second, separate instance.


@pytest.fixture(scope="session")
def kafka_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaPeer]:
    """One Apache Kafka broker (KRaft, loopback) for the whole session."""
    with KafkaPeer(tmp_path_factory.mktemp("kafka-peer")) as peer:
        yield peer


__all__ = ["kafka_peer", "nats_server", "rabbitmq_server", "redis_server"]
