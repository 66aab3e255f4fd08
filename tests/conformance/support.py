"""Topic creation for the conformance tests: ``TopicMaker`` names each topic after its test."""

from __future__ import annotations

import itertools

from shoal.embedded import EmbeddedBroker
from tests.support.broker import create_topic

_topic_numbers = itertools.count()


class TopicMaker:
    """``new_topic(partitions)`` creates a topic named after the test and returns its name."""

    def __init__(self, broker: EmbeddedBroker, test_name: str) -> None:
        self._broker = broker
        self._base = "".join(c if c.isalnum() or c in "-_." else "-" for c in test_name)[:180]

    def __call__(self, partitions: int) -> str:
        name = f"{self._base}-{next(_topic_numbers)}"
        create_topic(self._broker, name, partitions)
        return name
