"""Features shoal refuses are logged once per interval, naming the client."""

from __future__ import annotations

import logging
from typing import Final

import pytest

from shoal.broker.context import RequestContext
from shoal.broker.unsupported import LOG_INTERVAL_MS, UnsupportedFeatures
from shoal.testing.clock import FakeClock

CTX: Final = RequestContext(client_id="orders", client_host="10.0.0.7", client_port=40000)


def test_unsupported_features_are_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="shoal.broker.unsupported")
    clock = FakeClock()
    features = UnsupportedFeatures(clock)
    for _ in range(5):
        features.refused("transactions", CTX, "Unset transactional.id.")
    features.refused("share groups", CTX, "Use a consumer group.")
    clock.advance(LOG_INTERVAL_MS)
    features.refused("transactions", CTX, "Unset transactional.id.")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert "'orders' at 10.0.0.7:40000 asked for transactions" in lines[0]
    assert "share groups" in lines[1]
    assert "4 more such requests refused" in lines[2]
