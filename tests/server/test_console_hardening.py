"""The console's HTTP faces hardened (issue 17), through the broker-served admin API and
registry and through ``shoal console`` in front of the same broker:

- names that need escaping in a URL path (a "/", "%", "?", "#", a space, non-ASCII): group ids,
  SCRAM user names and registry subjects. Kafka topic names cannot hold these; the others can,
  and each must reach its route as one path segment;
- cross-site requests (a form POST, a no-cors fetch, another Origin) refused before anything
  changes, while confluent-kafka's registry client and the console's own page still work.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from typing import Final
from urllib.parse import quote

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from shoal.app.resilience.dlq import dlq_topic
from shoal.embedded import EmbeddedBroker
from shoal.server.console.redrive import dlq_origin
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


FORM_BODIES: Final = (
    {"content-type": "application/x-www-form-urlencoded"},
    {"content-type": "text/plain"},
    {"content-type": "multipart/form-data; boundary=x"},
    {},  # a no-cors fetch of a Blob sends no type at all
)
"""What a page on another site can POST without a preflight."""
EVIL: Final = "http://evil.example"


def test_the_registry_refuses_what_a_cross_site_page_can_send(broker: EmbeddedBroker) -> None:
    subject = "csrf-value"
    body = json.dumps({"schema": SCHEMA})
    with httpx.Client(base_url=broker.http_url, timeout=TIMEOUT_S) as http:
        for headers in FORM_BODIES:
            refused = http.post(f"/subjects/{subject}/versions", content=body, headers=headers)
            assert refused.status_code == 415, (headers, refused.text)
            assert refused.json()["error_code"] == 415
        json_type = {"content-type": "application/vnd.schemaregistry.v1+json"}
        for browser_says in (
            {"origin": EVIL},
            {"origin": "null"},
            {"sec-fetch-site": "cross-site"},
        ):
            refused = http.post(
                f"/subjects/{subject}/versions", content=body, headers=json_type | browser_says
            )
            assert refused.status_code == 403, (browser_says, refused.text)
            assert "another site" in refused.json()["message"]
        refused = http.put("/config", json={"compatibility": "NONE"}, headers={"origin": EVIL})
        assert refused.status_code == 403
        assert subject not in http.get("/subjects").json()
        assert http.get("/config").json()["compatibilityLevel"] == "BACKWARD"
        # The page's own requests (same origin) and plain clients still write.
        own = http.post(
            f"/subjects/{subject}/versions",
            content=body,
            headers=json_type | {"origin": broker.http_url, "sec-fetch-site": "same-origin"},
        )
        assert own.status_code == 200, own.text
    with SchemaRegistryClient({"url": broker.http_url}) as registry:
        registry.register_schema("csrf-client-value", Schema(SCHEMA, "AVRO"))
        registry.set_compatibility("csrf-client-value", "FULL")
        assert registry.get_compatibility("csrf-client-value") == "FULL"


@pytest.mark.parametrize("backend", ["broker", "console"])
def test_the_admin_api_refuses_cross_site_writes_on_both_backends(
    broker: EmbeddedBroker, console: httpx.Client, backend: str
) -> None:
    base = f"{broker.http_url}/api/v1" if backend == "broker" else str(console.base_url)
    topic = f"csrf-{backend}"
    header = {"X-Shoal-Admin": "1"}
    with httpx.Client(base_url=base, timeout=TIMEOUT_S) as http:
        # Without the header: refused the same way by both (one rule: shoal.cross_site).
        refused = http.post("/topics", json={"name": topic})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "csrf_header_missing"
        for headers in FORM_BODIES:
            refused = http.post(
                "/topics", content=f'{{"name": "{topic}"}}', headers=header | headers
            )
            assert refused.status_code == 415, (headers, refused.text)
            assert refused.json()["error"] == "unsupported_media_type"
        for browser_says in ({"origin": EVIL}, {"sec-fetch-site": "same-site"}):
            refused = http.post("/topics", json={"name": topic}, headers=header | browser_says)
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"] == "cross_site_request"
        assert topic not in [t["name"] for t in http.get("/topics").json()["topics"]]
        created = http.post(
            "/topics", json={"name": topic}, headers=header | {"sec-fetch-site": "same-origin"}
        )
        assert created.status_code == 201, created.text


@pytest.mark.parametrize("backend", ["broker", "console"])
def test_a_redrive_goes_only_to_an_existing_topic_that_is_not_internal(
    broker: EmbeddedBroker, console: httpx.Client, backend: str
) -> None:
    dlq, origin = f"redrive-{backend}.dlq", f"redrive-{backend}"
    with admin_client(broker) as api:
        for name in (dlq, origin):
            assert api.post("/topics", json={"name": name}).status_code == 201
    record = {"key": "k", "value": "v", "redrive_from": dlq}
    with admin_client(broker) as served:
        client = console if backend == "console" else served
        for target in ("__consumer_offsets", "_schemas", "no-such-topic", dlq):
            refused = client.post(f"/topics/{_segment(target)}/messages", json=record)
            assert refused.status_code == 400, (target, refused.text)
            assert refused.json()["error"] == "redrive_target_refused"
            assert target in refused.json()["message"]
        assert client.get("/topics/no-such-topic").status_code == 404  # not created either
        ends = client.get(f"/topics/{dlq}/messages").json()["end_offsets"]
        assert ends == {"0": 0}
        written = client.post(f"/topics/{origin}/messages", json=record)
        assert written.status_code == 201, written.text
        # A record's header is not the user: another existing topic only when the user names it.
        other = f"redrive-{backend}-other"
        assert served.post("/topics", json={"name": other}).status_code == 201
        refused = client.post(f"/topics/{other}/messages", json=record)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "redrive_target_refused"
        assert client.get(f"/topics/{other}/messages").json()["end_offsets"] == {"0": 0}
        typed = client.post(
            f"/topics/{other}/messages", json=record | {"redrive_target_chosen": True}
        )
        assert typed.status_code == 201, typed.text
        wrong = client.post(
            f"/topics/{other}/messages", json=record | {"redrive_target_chosen": "yes"}
        )
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_field"


def test_export_all_matching_is_the_same_on_both_backends(
    broker: EmbeddedBroker, console: httpx.Client
) -> None:
    topic = "export-both"
    with admin_client(broker) as served:
        assert served.post("/topics", json={"name": topic, "partitions": 2}).status_code == 201
        for i in range(12):
            record = {"partition": i % 2, "key": f"k{i}", "value": "yes" if i % 3 else "no"}
            assert served.post(f"/topics/{topic}/messages", json=record).status_code == 201
        answers = {}
        for name, client in (("broker", served), ("console", console)):
            exported = client.get(f"/topics/{topic}/messages/export", params={"value": "yes"})
            assert exported.status_code == 200, exported.text
            assert exported.headers["content-disposition"] == f'attachment; filename="{topic}.json"'
            answers[name] = sorted(exported.json(), key=lambda m: (m["partition"], m["offset"]))
            csv = client.get(
                f"/topics/{topic}/messages/export", params={"format": "csv", "partition": "1"}
            )
            assert csv.headers["content-type"].startswith("text/csv")
            assert len(csv.text.splitlines()) == 1 + 6
            refused = client.get(f"/topics/{topic}/messages/export", params={"format": "xml"})
            assert refused.status_code == 400
        assert len(answers["broker"]) == 8
        assert answers["broker"] == answers["console"]


@pytest.mark.parametrize("backend", ["broker", "console"])
def test_browse_and_export_a_time_window(
    broker: EmbeddedBroker, console: httpx.Client, backend: str
) -> None:
    """from=timestamp starts, until= ends each partition at its first record at or after that
    time (ListOffsets by time); pages move on by cursor inside the window."""
    topic = f"window-{backend}"
    base_ms = int(time.time() * 1000) - 60_000
    with admin_client(broker) as served:
        assert served.post("/topics", json={"name": topic}).status_code == 201
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        for i in range(5):
            producer.produce(topic, f"v{i}".encode(), partition=0, timestamp=base_ms + 1000 * i)
        assert producer.flush(TIMEOUT_S) == 0
        client = console if backend == "console" else served
        window = {"from": "timestamp", "timestamp": base_ms + 1000, "until": base_ms + 3000}
        seen, cursor = [], None
        for _ in range(4):
            params = {**window, "limit": 1} if cursor is None else {"cursor": cursor, "limit": 1}
            params["until"] = window["until"]
            page = client.get(f"/topics/{topic}/messages", params=params)
            assert page.status_code == 200, page.text
            assert page.json()["end_offsets"] == {"0": 3}
            seen += [m["offset"] for m in page.json()["messages"]]
            cursor = page.json()["next_cursor"]
        assert seen == [1, 2]
        exported = client.get(f"/topics/{topic}/messages/export", params=window)
        assert [m["offset"] for m in exported.json()] == [1, 2]
        refused = client.get(f"/topics/{topic}/messages", params={"until": "-1"})
        assert refused.status_code == 400


def test_the_redrive_rule_names_dlqs_as_the_framework_does() -> None:
    assert dlq_origin(dlq_topic("orders")) == "orders"
    assert dlq_origin("orders") is None
