"""``shoal console``: the console's API answered through Kafka's client APIs, checked against
the broker-served admin API on the same shoal broker (same routes, same answers), against the
Apache Kafka peer, and the command itself as a user starts it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import httpx
import pytest
from confluent_kafka import Consumer, Producer

from shoal.cli.common import BOOTSTRAP_ENV
from shoal.console.browse import Filters as ConsoleFilters
from shoal.console.browse import read_page, read_page_counted
from shoal.embedded import EmbeddedBroker
from tests.console.support import console_server
from tests.peers.kafka_peer import KafkaPeer
from tests.server.admin_support import TIMEOUT_S, admin_client, eventually
from tests.support.sasl import add_user

pytestmark = pytest.mark.integration

CSRF: Final = {"X-Shoal-Admin": "1"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    # No initial rebalance delay: a consumer's first join answers at once (one member here).
    started = EmbeddedBroker(
        str(tmp_path_factory.mktemp("console-process")), group_initial_rebalance_delay_ms=0
    ).start()
    yield started
    started.stop()


@contextmanager
def _console(bootstrap: str, registry: str | None = None) -> Iterator[httpx.Client]:
    with (
        console_server(bootstrap, registry) as url,
        httpx.Client(base_url=url, headers=CSRF, timeout=TIMEOUT_S) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def console(broker: EmbeddedBroker) -> Iterator[httpx.Client]:
    with _console(broker.bootstrap_servers, broker.http_url) as client:
        yield client


def _produce(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for record in records:
        producer.produce(topic, **record)
    assert producer.flush(TIMEOUT_S) == 0


def _error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["x-content-type-options"] == "nosniff"


def test_pages_and_browsing_match_the_broker_served_api(
    broker: EmbeddedBroker, console: httpx.Client
) -> None:
    topic = "process-browse"
    created = console.post("/api/v1/topics", json={"name": topic, "partitions": 2})
    assert created.status_code == 201, created.text
    records = [
        {"key": f"k{i}".encode(), "value": f"value-{i}".encode(), "partition": i % 2}
        for i in range(6)
    ]
    records.append(
        {"key": b"bin", "value": bytes([0, 255]), "partition": 1, "headers": [("h", b"x")]}
    )
    _produce(broker.bootstrap_servers, topic, records)
    assert console.get("/").status_code == 200  # the same pages
    assert "console.js" in console.get("/").text
    with admin_client(broker) as served:
        listed = {t["name"]: t for t in console.get("/api/v1/topics").json()["topics"]}
        truth = {t["name"]: t for t in served.get("/topics").json()["topics"]}
        for p, q in zip(listed[topic]["partitions"], truth[topic]["partitions"], strict=True):
            fields = ("low_watermark", "high_watermark", "leader", "replicas", "isr")
            assert [p[f] for f in fields] == [q[f] for f in fields]
        for query in (
            {},
            {"partition": "1"},
            {"from": "newest", "limit": "2"},
            {"from": "offset", "offset": "2", "partition": "0"},
            {"key": "k3"},
            {"value": "value-"},
            {"header": "x"},
            {"limit": "2"},
            {"cursor": "0:1,1:2", "limit": "3"},
        ):
            mine = console.get(f"/api/v1/topics/{topic}/messages", params=query).json()
            theirs = served.get(f"/topics/{topic}/messages", params=query).json()
            assert mine["messages"] == theirs["messages"], query
            assert mine["end_offsets"] == theirs["end_offsets"], query
        # A keyed message lands where the broker-served API (Kafka's murmur2) puts it.
        for key in ("alpha", "beta", "gamma"):
            mine = console.post(f"/api/v1/topics/{topic}/messages", json={"key": key, "value": "v"})
            theirs = served.post(f"/topics/{topic}/messages", json={"key": key, "value": "v"})
            assert mine.status_code == 201, mine.text
            assert mine.json()["partition"] == theirs.json()["partition"], key


def test_configs_delete_and_bad_input(broker: EmbeddedBroker, console: httpx.Client) -> None:
    topic = "process-configs"
    assert console.post("/api/v1/topics", json={"name": topic}).status_code == 201
    _error(console.post("/api/v1/topics", json={"name": topic}), 409, "topic_already_exists")
    _error(
        console.post("/api/v1/topics", json={"name": "bad name!"}), 400, "invalid_topic_exception"
    )
    changed = console.patch(
        f"/api/v1/topics/{topic}/configs", json={"set": {"retention.ms": "5000"}}
    )
    assert changed.status_code == 200, changed.text
    configs = {c["name"]: c for c in changed.json()["configs"]}
    assert (configs["retention.ms"]["value"], configs["retention.ms"]["source"]) == (
        "5000",
        "TOPIC_CONFIG",
    )
    no_csrf = console.post("/api/v1/topics", json={"name": "x"}, headers={"X-Shoal-Admin": ""})
    _error(no_csrf, 403, "csrf_header_missing")
    _error(console.get(f"/api/v1/topics/{topic}/messages?limit=501"), 400, "invalid_page_size")
    _error(
        console.get(f"/api/v1/topics/{topic}/messages?from=offset&offset=9"),
        400,
        "offset_out_of_range",
    )
    _error(console.delete(f"/api/v1/topics/{topic}"), 400, "confirmation_required")
    assert console.delete(f"/api/v1/topics/{topic}?confirm={topic}").status_code == 200
    _error(console.get(f"/api/v1/topics/{topic}"), 404, "unknown_topic_or_partition")


def _group_run(bootstrap: str, topic: str, group: str, count: int) -> None:
    """A consumer that reads ``count`` records, commits and leaves."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        seen: list[object] = []

        def read() -> bool:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                seen.append(msg)
            return len(seen) >= count

        eventually(read, f"{count} records")
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def _group_reset(console: httpx.Client, bootstrap: str, topic: str, group: str) -> None:
    assert console.post("/api/v1/topics", json={"name": topic}).status_code == 201
    _produce(bootstrap, topic, [{"value": f"v{i}".encode(), "partition": 0} for i in range(5)])
    _group_run(bootstrap, topic, group, 5)
    described = console.get(f"/api/v1/groups/{group}").json()
    assert [(o["committed_offset"], o["lag"]) for o in described["offsets"]] == [(5, 0)]
    listed = {g["group_id"]: g for g in console.get("/api/v1/groups").json()["groups"]}
    assert listed[group]["state"] == "Empty"
    body = {"topic": topic, "to": "earliest"}
    dry = console.post(f"/api/v1/groups/{group}/offsets/reset", json=body).json()
    assert dry["dry_run"] is True
    assert [(p["current_offset"], p["new_offset"]) for p in dry["partitions"]] == [(5, 0)]
    assert console.get(f"/api/v1/groups/{group}").json()["offsets"][0]["committed_offset"] == 5
    applied = console.post(
        f"/api/v1/groups/{group}/offsets/reset", json={**body, "dry_run": False}
    ).json()
    assert applied["dry_run"] is False
    eventually(
        lambda: console.get(f"/api/v1/groups/{group}").json()["offsets"][0]["lag"] == 5,
        "the reset offsets",
    )
    _error(
        console.post(
            f"/api/v1/groups/{group}/offsets/reset", json={**body, "to": "offset", "value": 99}
        ),
        400,
        "offset_out_of_range",
    )


def test_group_reset_dry_run_then_apply(broker: EmbeddedBroker, console: httpx.Client) -> None:
    _group_reset(console, broker.bootstrap_servers, "process-lag", "process-readers")


def test_security_pages_match_the_broker_served_api(
    broker: EmbeddedBroker, console: httpx.Client
) -> None:
    add_user(broker, "process-user", "process-secret")
    with admin_client(broker) as served:
        assert console.get("/api/v1/users").json() == served.get("/users").json()
        assert served.get("/acls").json() == {"authorizer": False, "acls": []}
    # Through Kafka's client API "no authorizer" and "no ACLs" look the same: unknown.
    assert console.get("/api/v1/acls").json() == {"authorizer": None, "acls": []}
    _change_security(console)
    with admin_client(broker) as served:
        grant = {**GRANT, "resource_name": "served"}
        _error(served.post("/acls", json=grant), 409, "security_disabled")  # the same answer


GRANT: Final = {
    "resource_type": "TOPIC",
    "resource_name": "orders",
    "principal": "User:process-user",
    "operation": "READ",
}


def _change_security(console: httpx.Client) -> None:
    """Through CreateAcls and AlterUserScramCredentials: an ACL is refused where no authorizer
    runs; a user set is listed (mechanism and iterations only) until deleted."""
    _error(console.post("/api/v1/acls", json=GRANT), 409, "security_disabled")
    _error(console.post("/api/v1/acls", json={**GRANT, "operation": "FLY"}), 400, "invalid_field")
    body = {"mechanism": "SCRAM-SHA-256", "password": "w-secret", "iterations": 4096}
    _error(
        console.put("/api/v1/users/writer", json={**body, "iterations": 1}),
        400,
        "unacceptable_credential",
    )
    _error(
        console.put("/api/v1/users/writer", json={**body, "mechanism": "PLAIN"}),
        400,
        "unsupported_sasl_mechanism",
    )
    answer = console.put("/api/v1/users/writer", json=body)
    assert answer.status_code == 200, answer.text
    eventually(
        lambda: (
            {"user": "writer", "mechanisms": [{"mechanism": "SCRAM-SHA-256", "iterations": 4096}]}
            in console.get("/api/v1/users").json()["users"]
        ),
        "the user listed",
    )
    params = {"mechanism": "SCRAM-SHA-256"}
    assert console.delete("/api/v1/users/writer", params=params).status_code == 200
    eventually(
        lambda: "writer" not in {u["user"] for u in console.get("/api/v1/users").json()["users"]},
        "the user gone",
    )
    _error(console.delete("/api/v1/users/writer", params=params), 404, "resource_not_found")


def test_registry_is_forwarded(broker: EmbeddedBroker, console: httpx.Client) -> None:
    assert console.get("/subjects").json() == httpx.get(f"{broker.http_url}/subjects").json()
    with _console(broker.bootstrap_servers) as without:
        answer = without.get("/subjects")
        assert answer.status_code == 404
        assert "--registry" in answer.json()["message"]


def test_against_the_apache_kafka_peer(kafka_peer: KafkaPeer) -> None:
    """The same API (so the same pages) against Apache Kafka 4.4."""
    with _console(kafka_peer.bootstrap_servers) as console:
        topic = "console-on-kafka"
        assert (
            console.post("/api/v1/topics", json={"name": topic, "partitions": 2}).status_code == 201
        )
        written = console.post(
            f"/api/v1/topics/{topic}/messages",
            json={
                "key": "k",
                "value": "<script>x</script>",
                "headers": [{"key": "h", "value": "v"}],
            },
        )
        assert written.status_code == 201, written.text
        page = console.get(f"/api/v1/topics/{topic}/messages", params={"header": "v"}).json()
        assert [m["value"]["data"] for m in page["messages"]] == ["<script>x</script>"]
        assert console.get(f"/api/v1/topics/{topic}").json()["configs"]
        assert console.get("/api/v1/acls").json() == {"authorizer": None, "acls": []}
        assert console.get("/api/v1/users").json() == {"users": []}
        _change_security(console)
        overview = console.get("/api/v1/broker").json()
        assert overview["traffic"] is None and overview["brokers"]
        _group_reset(console, kafka_peer.bootstrap_servers, "console-lag-on-kafka", "console-g")


def test_shoal_console_command_serves_the_console(broker: EmbeddedBroker) -> None:
    command = [sys.executable, "-m", "shoal.cli", "console", "-b", broker.bootstrap_servers]
    with subprocess.Popen(
        [*command, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # printed once the port is bound
            assert line.startswith("shoal console on http://127.0.0.1:"), line
            url = line.split(" on ")[1].strip()
            page = httpx.get(url, timeout=TIMEOUT_S)
            assert page.status_code == 200
            assert page.headers["content-security-policy"].startswith("default-src 'self'")
            topics = httpx.get(url + "api/v1/topics", timeout=TIMEOUT_S)
            assert topics.status_code == 200
            # On loopback and without authentication: a DNS-rebinding page (another Host) is
            # refused, its CSRF header notwithstanding.
            rebound = httpx.post(
                url + "api/v1/topics",
                headers={"Host": "attacker.example", **CSRF},
                json={"name": "rebound", "partitions": 1},
                timeout=TIMEOUT_S,
            )
            assert rebound.status_code == 421
        finally:
            process.terminate()
            process.wait(TIMEOUT_S)
    env = {k: v for k, v in os.environ.items() if k != BOOTSTRAP_ENV}  # no default either
    missing = subprocess.run(command[:4], capture_output=True, text=True, check=False, env=env)
    assert missing.returncode == 2 and "--bootstrap is required" in missing.stderr


def test_a_page_collects_a_bounded_number_of_bytes(
    broker: EmbeddedBroker, console: httpx.Client
) -> None:
    """librdkafka decompresses: the page stops collecting at its byte share, the cursor on the
    first message left out, and long values are shown cut short with their size."""
    topic = "process-page-bytes"
    assert console.post("/api/v1/topics", json={"name": topic}).status_code == 201
    value_bytes = 10_000
    _produce(
        broker.bootstrap_servers,
        topic,
        [{"value": bytes(value_bytes), "partition": 0} for _ in range(5)],
    )
    config = {"bootstrap.servers": broker.bootstrap_servers}
    page = read_page(
        config, topic, {0: 0}, {0: 5}, 500, ConsoleFilters(), page_bytes=2 * value_bytes + 1
    )
    assert [m["offset"] for m in page["messages"]] == [0, 1]
    assert page["next_cursor"] == "0:2"
    cut = read_page(config, topic, {0: 4}, {0: 5}, 500, ConsoleFilters(), shown_bytes=100)
    assert cut["messages"][0]["value"] == {
        "encoding": "utf-8",
        "data": "\0" * 100,
        "truncated": True,
        "size": value_bytes,
    }
    assert cut["next_cursor"] == "0:5"
    # What an export counts against EXPORT_SCAN_BYTES_MAX: every message read, matching or not.
    nothing, read = read_page_counted(
        config, topic, {0: 0}, {0: 5}, 500, ConsoleFilters(value="needle")
    )
    assert nothing["messages"] == []
    assert read == 5 * value_bytes
