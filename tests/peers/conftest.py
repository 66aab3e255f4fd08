"""The ``kafka_peer`` fixture: one Apache Kafka broker for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.kafka_peer import KafkaPeer


@pytest.fixture(scope="session")
def kafka_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaPeer]:
    with KafkaPeer(tmp_path_factory.mktemp("kafka-peer")) as peer:
        yield peer
