"""Fixtures for registry tests: the service over an in-memory log, served through Starlette's
test client (fast, no broker), and the real broker with its registry."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from shoal.registry import MemorySchemaLog, RegistryService, build_registry_app

# starlette's test client (on httpx, which it now deprecates) and authlib (imported by
# confluent-kafka's registry client) warn at import time; importing them once here keeps the
# warnings-as-errors setting from failing collection over a third party's deprecation notice.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import confluent_kafka.schema_registry  # noqa: F401
    from starlette.testclient import TestClient


@pytest.fixture
def memory_log() -> MemorySchemaLog:
    return MemorySchemaLog()


@pytest.fixture
def service(memory_log: MemorySchemaLog) -> RegistryService:
    service = RegistryService()
    service.open(memory_log)
    return service


@pytest.fixture
def client(service: RegistryService) -> Iterator[TestClient]:
    with TestClient(build_registry_app(service)) as test_client:
        yield test_client
