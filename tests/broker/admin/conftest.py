"""Fixtures for the admin API tests; the helpers they import are in support.py."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from shoal.embedded import EmbeddedBroker
from tests.broker.admin.support import admin_for


@pytest.fixture
def broker(shoal_broker: EmbeddedBroker) -> EmbeddedBroker:
    return shoal_broker


@pytest.fixture
def admin(broker: EmbeddedBroker) -> AdminClient:
    return admin_for(broker)
