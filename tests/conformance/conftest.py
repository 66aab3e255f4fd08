"""One broker per conformance module (topics are unique per test), and the ``new_topic`` fixture
(a :class:`~tests.conformance.support.TopicMaker`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shoal.embedded import EmbeddedBroker
from tests.conformance.support import TopicMaker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(str(tmp_path_factory.mktemp("conformance"))) as embedded:
        yield embedded


@pytest.fixture
def new_topic(broker: EmbeddedBroker, request: pytest.FixtureRequest) -> TopicMaker:
    return TopicMaker(broker, request.node.name)
