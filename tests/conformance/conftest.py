"""One broker per conformance module (topics are unique per test), and topic creation."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from shoal.embedded import EmbeddedBroker
from tests.conftest import create_topic

_topic_numbers = itertools.count()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(str(tmp_path_factory.mktemp("conformance"))) as embedded:
        yield embedded


@pytest.fixture
def new_topic(broker: EmbeddedBroker, request: pytest.FixtureRequest) -> TopicMaker:
    return TopicMaker(broker, request.node.name)


class TopicMaker:
    """``new_topic(partitions)`` creates a topic named after the test and returns its name."""

    def __init__(self, broker: EmbeddedBroker, test_name: str) -> None:
        self._broker = broker
        self._base = "".join(c if c.isalnum() or c in "-_." else "-" for c in test_name)[:180]

    def __call__(self, partitions: int) -> str:
        name = f"{self._base}-{next(_topic_numbers)}"
        create_topic(self._broker, name, partitions)
        return name
