"""The ``harness`` fixture: a :class:`~tests.storage.support.Harness`, abandoned at teardown."""

from __future__ import annotations

import pytest

from tests.storage.support import Harness


@pytest.fixture
def harness() -> Harness:
    h = Harness()
    yield h
    if h.manager is not None:
        h.manager.abandon()
