"""The transport suite on the in-process memory transport."""

from __future__ import annotations

import uuid

import pytest

from tests.app.transports.transport_suite import TransportSuite


class TestMemoryTransport(TransportSuite):
    @pytest.fixture
    def broker_url(self) -> str:
        return f"memory://{uuid.uuid4().hex}"
