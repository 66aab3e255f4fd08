"""One broker per test module for the bad-input tests (the ``arena`` fixture, a
:class:`~tests.server.support.Arena`); the helpers tests import are in support.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from shoal.embedded import EmbeddedBroker
from tests.server.support import FETCH_WAIT_MS_MAX, HEALTHY_TOPIC, Arena
from tests.server.wire import HealthyClient


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    data_dir = tmp_path_factory.mktemp("arena")
    with EmbeddedBroker(
        str(data_dir),
        adjust_broker_config=lambda config: dataclasses.replace(
            config, fetch_max_wait_ms_max=FETCH_WAIT_MS_MAX
        ),
    ) as broker:
        healthy = HealthyClient(broker.bootstrap_servers, HEALTHY_TOPIC).start()
        try:
            yield Arena(broker, healthy)
        finally:
            healthy.stop()
