"""Names that need escaping in a URL path (a "/", "%", "?", "#", a space, non-ASCII): group ids,
SCRAM user names and registry subjects through the broker-served admin API and registry, and
through ``shoal console`` in front of the same broker. Kafka topic names cannot hold these; the
others can, and each must reach its route as one path segment (issue 17)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Final
from urllib.parse import quote

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from shoal.embedded import EmbeddedBroker
from tests.console.support import console_server
from tests.server.admin_support import TIMEOUT_S, admin_client

with warnings.catch_warnings():  # authlib warns at import (see tests/registry/conftest.py)
    warnings.simplefilter("ignore")
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

pytestmark = pytest.mark.integration

AWKWARD: Final = "team/a b?c#d%25e-é"
"""One name with every character a path must escape: it is one segment only when encoded."""
SCHEMA: Final = '{"type": "record", "name": "Named", "fields": [{"name": "id", "type": "int"}]}'


def _segment(name: str) -> str:
    """``name`` as one path segment, as the console's page (encodeURIComponent) sends it."""
    return quote(name, safe="")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    started = EmbeddedBroker(str(tmp_path_factory.mktemp("names"))).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def console(broker: EmbeddedBroker) -> Iterator[httpx.Client]:
    """``shoal console`` in front of the same broker and its registry."""
    with (
        console_server(broker.bootstrap_servers, broker.http_url) as url,
        httpx.Client(
            base_url=f"{url}/api/v1", headers={"X-Shoal-Admin": "1"}, timeout=TIMEOUT_S
        ) as client,
    ):
        yield client


def _commit(broker: EmbeddedBroker, group: str, topic: str, offset: int) -> None:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def test_a_group_id_with_a_slash_is_one_path_segment(
    broker: EmbeddedBroker, console: httpx.Client
) -> None:
    with admin_client(broker) as api:
        assert api.post("/topics", json={"name": "names-orders"}).status_code == 201
        _commit(broker, AWKWARD, "names-orders", 0)
        for client in (api, console):
            described = client.get(f"/groups/{_segment(AWKWARD)}")
            assert described.status_code == 200, described.text
            assert described.json()["group_id"] == AWKWARD
            assert [o["topic"] for o in described.json()["offsets"]] == ["names-orders"]
            plan = client.post(
                f"/groups/{_segment(AWKWARD)}/offsets/reset",
                json={"topic": "names-orders", "to": "earliest", "dry_run": True},
            )
            assert plan.status_code == 200, plan.text
            assert plan.json()["group_id"] == AWKWARD
        # The name's own "/" is not a path separator: "team" is no group, and the rest no route.
        assert api.get("/groups/team/a%20b").status_code == 404


def test_a_user_name_with_a_slash_is_set_listed_and_deleted(broker: EmbeddedBroker) -> None:
    with admin_client(broker) as api:
        path = f"/users/{_segment(AWKWARD)}"
        body = {"mechanism": "SCRAM-SHA-256", "password": "pw-secret", "iterations": 4096}
        created = api.put(path, json=body)
        assert created.status_code == 200, created.text
        assert created.json()["user"] == AWKWARD
        assert AWKWARD in [u["user"] for u in api.get("/users").json()["users"]]
        deleted = api.delete(path, params={"mechanism": "SCRAM-SHA-256"})
        assert deleted.status_code == 200, deleted.text
        assert AWKWARD not in [u["user"] for u in api.get("/users").json()["users"]]


def test_a_subject_with_a_slash_through_the_console_process(
    broker: EmbeddedBroker, console: httpx.Client
) -> None:
    with SchemaRegistryClient({"url": broker.http_url}) as registry:
        schema_id = registry.register_schema(AWKWARD, Schema(SCHEMA, "AVRO"))
    # The console process forwards the registry's API as the page sent it.
    base = str(console.base_url).removesuffix("/api/v1/")
    with httpx.Client(base_url=base, timeout=TIMEOUT_S) as http:
        versions = http.get(f"/subjects/{_segment(AWKWARD)}/versions")
        assert versions.status_code == 200, versions.text
        assert versions.json() == [1]
        latest = http.get(f"/subjects/{_segment(AWKWARD)}/versions/latest")
        assert latest.json()["id"] == schema_id
        assert latest.json()["subject"] == AWKWARD
