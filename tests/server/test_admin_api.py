"""The admin API (/api/v1) against a real broker, with confluent-kafka on the Kafka side:
topics and groups, each bad input refused with a clear JSON 4xx that changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from shoal.embedded import EmbeddedBroker
from shoal.server.admin.access import CSRF_HEADER
from shoal.server.settings import Settings
from tests.server.admin_support import TIMEOUT_S, admin_client, eventually

pytestmark = pytest.mark.integration

XSS = "<script>alert(1)</script>"
XSS_IN_PATH = "<img src=x onerror=alert(1)>"
"""Markup that fits in one path segment."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One broker for the module: each test uses its own topic and group names."""
    started = EmbeddedBroker(str(tmp_path_factory.mktemp("admin-api"))).start()
    yield started
    started.stop()


@pytest.fixture
def api(broker: EmbeddedBroker) -> Iterator[httpx.Client]:
    with admin_client(broker) as client:
        yield client


OLD_TS = 1_000_000_000_000
"""A record timestamp in 2001: a group behind such records lags by over 20 years."""
TWENTY_YEARS_S = 20 * 365 * 24 * 3600


def _produce(broker: EmbeddedBroker, topic: str, count: int, timestamp: int = 0) -> None:
    """``count`` records to partition 0, stamped ``timestamp`` (0: the producer's clock)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i in range(count):
        key = f"key-{i}".encode()
        producer.produce(topic, f"value-{i}".encode(), key=key, partition=0, timestamp=timestamp)
    assert producer.flush(TIMEOUT_S) == 0


def _error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    # JSON that no browser sniffs as HTML: a name with markup in it stays inert text.
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert body["error"] == error, body
    assert body["message"]
    return dict(body)


def _topic_names(api: httpx.Client) -> set[str]:
    return {t["name"] for t in api.get("/topics").json()["topics"]}


def test_topic_create_describe_alter_delete(broker: EmbeddedBroker, api: httpx.Client) -> None:
    created = api.post(
        "/topics", json={"name": "orders", "partitions": 2, "configs": {"retention.ms": "60000"}}
    )
    assert created.status_code == 201, created.text
    assert [p["partition"] for p in created.json()["partitions"]] == [0, 1]
    _produce(broker, "orders", 10)

    listed = {t["name"]: t for t in api.get("/topics").json()["topics"]}
    p0, p1 = listed["orders"]["partitions"]
    assert (p0["low_watermark"], p0["high_watermark"]) == (0, 10)
    assert p0["size_bytes"] > 0
    assert (p1["low_watermark"], p1["high_watermark"], p1["size_bytes"]) == (0, 0, 0)

    configs = {c["name"]: c for c in api.get("/topics/orders").json()["configs"]}
    assert configs["retention.ms"]["value"] == "60000"
    assert configs["retention.ms"]["source"] == "TOPIC_CONFIG"
    assert configs["cleanup.policy"]["source"] == "DEFAULT_CONFIG"

    altered = api.patch(
        "/topics/orders/configs",
        json={"set": {"max.message.bytes": "2048"}, "delete": ["retention.ms"]},
    )
    assert altered.status_code == 200, altered.text
    # A Kafka client sees the change: the API called the broker, not a copy of its state.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    [future] = admin.describe_configs([ConfigResource("TOPIC", "orders")]).values()
    seen = future.result(TIMEOUT_S)
    assert seen["max.message.bytes"].value == "2048"
    assert seen["retention.ms"].source != ConfigResource.Type.TOPIC  # back to the default
    assert seen["retention.ms"].is_default
    appended = api.patch("/topics/orders/configs", json={"append": {"cleanup.policy": "compact"}})
    policy = {c["name"]: c["value"] for c in appended.json()["configs"]}["cleanup.policy"]
    assert policy == "delete,compact"

    _error(api.delete("/topics/orders"), 400, "confirmation_required")
    _error(api.delete("/topics/orders", params={"confirm": "other"}), 400, "confirmation_required")
    assert "orders" in _topic_names(api)
    deleted = api.delete("/topics/orders", params={"confirm": "orders"})
    assert deleted.status_code == 200, deleted.text
    assert "orders" not in admin.list_topics(timeout=TIMEOUT_S).topics
    _error(api.get("/topics/orders"), 404, "unknown_topic_or_partition")


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"name": "bad/name"}, 400, "invalid_topic_exception"),
        ({"name": XSS}, 400, "invalid_topic_exception"),
        ({"name": "a" * 250}, 400, "invalid_topic_exception"),
        ({"name": "ok-name", "partitions": 0}, 400, "invalid_partitions"),
        ({"name": "ok-name", "partitions": "3"}, 400, "invalid_field"),
        ({"name": "ok-name", "partitions": True}, 400, "invalid_field"),
        ({"name": "ok-name", "configs": {"retention.mss": "1"}}, 400, "invalid_config"),
        ({"name": "ok-name", "configs": {"retention.ms": "soon"}}, 400, "invalid_config"),
        ({"name": "ok-name", "configs": {"retention.ms": 5}}, 400, "invalid_field"),
        ({"partitions": 1}, 400, "invalid_field"),
        ({"name": "ok.name", "partitions": 1}, 400, "invalid_topic_exception"),  # vs ok_name
    ],
)
def test_bad_topic_creations_change_nothing(
    api: httpx.Client, body: dict[str, Any], status: int, error: str
) -> None:
    if "ok_name" not in _topic_names(api):  # for the '.' / '_' collision, as in Kafka
        assert api.post("/topics", json={"name": "ok_name"}).status_code == 201
    before = _topic_names(api)
    _error(api.post("/topics", json=body), status, error)
    assert _topic_names(api) == before


def test_requests_a_cross_site_page_could_send_are_refused(
    broker: EmbeddedBroker, api: httpx.Client
) -> None:
    before = _topic_names(api)
    with httpx.Client(base_url=f"{broker.http_url}/api/v1", timeout=TIMEOUT_S) as bare:
        # No CSRF header: what an HTML form or a simple cross-site fetch sends.
        _error(bare.post("/topics", json={"name": "csrf-a"}), 403, "csrf_header_missing")
        _error(bare.delete("/topics/x", params={"confirm": "x"}), 403, "csrf_header_missing")
        form = bare.post(
            "/topics",
            content=b"name=csrf-b",
            headers={CSRF_HEADER: "1", "content-type": "application/x-www-form-urlencoded"},
        )
        _error(form, 415, "unsupported_media_type")
        text = bare.post(
            "/topics",
            content=b'{"name": "csrf-c"}',
            headers={CSRF_HEADER: "1", "content-type": "text/plain"},
        )
        _error(text, 415, "unsupported_media_type")
    _error(
        api.post("/topics", content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "invalid_json",
    )
    _error(api.post("/topics", json=["a"]), 400, "invalid_json")
    assert _topic_names(api) == before


def test_describe_refuses_bad_and_unknown_names_as_inert_json(api: httpx.Client) -> None:
    refused = _error(api.get(f"/topics/{XSS_IN_PATH}"), 400, "invalid_topic_exception")
    assert XSS_IN_PATH in refused["message"]  # as JSON text, which the header keeps from rendering
    _error(api.get("/topics/no-such-topic"), 404, "unknown_topic_or_partition")
    _error(api.get(f"/topics/{XSS}"), 404, "no_such_route")  # its '/' makes another path
    _error(api.put("/topics"), 405, "no_such_route")
    # A line break in a path segment matches no mount at all (found by tests/fuzz): still the
    # API's JSON error, not the bare server's plain-text "Not Found".
    _error(api.get("/topics/a%0Ab"), 404, "no_such_route")
    _error(api.patch("/topics/a%0Ab/configs", json={}), 404, "no_such_route")
    assert api.post("/topics", json={"name": "twice"}).status_code == 201
    _error(api.post("/topics", json={"name": "twice"}), 409, "topic_already_exists")
    _error(
        api.patch("/topics/twice/configs", json={"set": {"nope.config": "1"}}),
        400,
        "invalid_config",
    )
    # As IncrementalAlterConfigs: deleting a config that is not set (or not known) is no error.
    assert api.patch("/topics/twice/configs", json={"delete": ["nope.config"]}).status_code == 200
    both = {"set": {"retention.ms": "1"}, "delete": ["retention.ms"]}
    _error(api.patch("/topics/twice/configs", json=both), 400, "invalid_request")
    _error(api.patch("/topics/twice/configs", json={}), 400, "invalid_field")
    not_a_list = {"append": {"retention.ms": "5"}}
    _error(api.patch("/topics/twice/configs", json=not_a_list), 400, "invalid_config")
    _error(
        api.patch("/topics/nope/configs", json={"set": {"retention.ms": "1"}}),
        404,
        "unknown_topic_or_partition",
    )
    # The refused alters set no override.
    assert all(c["source"] != "TOPIC_CONFIG" for c in api.get("/topics/twice").json()["configs"])


def _offsets(api: httpx.Client, group: str) -> dict[int, dict[str, Any]]:
    described = api.get(f"/groups/{group}")
    assert described.status_code == 200, described.text
    return {row["partition"]: row for row in described.json()["offsets"]}


def test_group_describe_and_reset(broker: EmbeddedBroker, api: httpx.Client) -> None:
    topic, group = "payments", "payers"
    assert api.post("/topics", json={"name": topic, "partitions": 1}).status_code == 201
    _produce(broker, topic, 10, timestamp=OLD_TS)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": group,
            "client.id": "payer-1",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        eventually(lambda: consumer.poll(0.2) is not None, "a record")
        consumer.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
        described = api.get(f"/groups/{group}").json()
        assert described["state"] == "Stable"
        [member] = described["members"]
        assert member["client_id"] == "payer-1"
        assert member["client_host"]
        [row] = described["offsets"]
        assert (row["committed_offset"], row["high_watermark"], row["lag"]) == (4, 10, 6)
        assert row["lag_seconds"] > TWENTY_YEARS_S  # the age of record 4, from its timestamp
        groups = {g["group_id"]: g for g in api.get("/groups").json()["groups"]}
        assert groups[group]["members"] == 1
        # Burrow's verdict on one commit that leaves 6 records waiting: an ERROR (STALL, or
        # STOP as soon as time passes it), with the partition and figures as its reason.
        status = groups[group]["status"]
        assert (status["group"], status["worst"]) in {("ERROR", "STALL"), ("ERROR", "STOP")}
        assert status["reason"].startswith(f"{topic}-0 {status['worst']}: ")
        assert row["status"] in {"STALL", "STOP"} and "6" in row["status_reason"]
        # As kafka-consumer-groups: no reset under a live consumer.
        body = {"topic": topic, "to": "earliest", "dry_run": False}
        _error(api.post(f"/groups/{group}/offsets/reset", json=body), 409, "group_active")
        assert _offsets(api, group)[0]["committed_offset"] == 4
    finally:
        consumer.close()
    eventually(lambda: api.get(f"/groups/{group}").json()["members"] == [], "the member gone")

    reset = f"/groups/{group}/offsets/reset"
    dry = api.post(reset, json={"topic": topic, "to": "earliest"})
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert dry.json()["partitions"] == [
        {"topic": topic, "partition": 0, "current_offset": 4, "new_offset": 0}
    ]
    assert _offsets(api, group)[0]["committed_offset"] == 4  # a dry run changes nothing

    for bad, status, error in [
        (
            {"topic": topic, "to": "offset", "value": 11, "dry_run": False},
            400,
            "offset_out_of_range",
        ),
        (
            {"topic": topic, "to": "offset", "value": -1, "dry_run": False},
            400,
            "offset_out_of_range",
        ),
        ({"topic": topic, "to": "offset", "dry_run": False}, 400, "invalid_field"),
        ({"topic": topic, "to": "yesterday", "dry_run": False}, 400, "invalid_field"),
        (
            {"topic": topic, "to": "latest", "partitions": [5], "dry_run": False},
            404,
            "unknown_topic_or_partition",
        ),
        (
            {"topic": topic, "to": "latest", "partitions": [], "dry_run": False},
            400,
            "invalid_field",
        ),
        ({"topic": "nope", "to": "latest", "dry_run": False}, 404, "unknown_topic_or_partition"),
    ]:
        _error(api.post(reset, json=bad), status, error)
    assert _offsets(api, group)[0]["committed_offset"] == 4

    applied = api.post(reset, json={"topic": topic, "to": "offset", "value": 7, "dry_run": False})
    assert applied.status_code == 200, applied.text
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    [future] = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
    [committed] = future.result(TIMEOUT_S).topic_partitions
    assert (committed.topic, committed.partition, committed.offset) == (topic, 0, 7)
    row = _offsets(api, group)[0]
    assert (row["committed_offset"], row["lag"]) == (7, 3)

    latest = api.post(
        reset, json={"topic": topic, "to": "timestamp", "value": 2**62, "dry_run": False}
    )
    assert latest.json()["partitions"][0]["new_offset"] == 10  # nothing that late: the end
    caught_up = _offsets(api, group)[0]
    assert (caught_up["lag"], caught_up["lag_seconds"]) == (0, 0.0)
    # The status follows the commits without any /metrics scrape (sampled on a timer and on
    # reads): caught up is OK.
    eventually(
        lambda: (
            api.get(f"/groups/{group}").json()["status"]
            == {"group": "OK", "worst": "OK", "reason": "all 1 partition(s) OK"}
        ),
        "the group judged OK once caught up",
    )
    assert _offsets(api, group)[0]["status_reason"] == "caught up (lag 0)"

    _error(api.get("/groups/no-such-group"), 404, "group_id_not_found")
    # The groups' own topic exists now; the API refuses to delete it, as the Kafka API does.
    offsets_topic = {"confirm": "__consumer_offsets"}
    _error(api.delete("/topics/__consumer_offsets", params=offsets_topic), 403, "policy_violation")


def test_a_kip_848_group_is_described_and_guarded_too(
    broker: EmbeddedBroker, api: httpx.Client
) -> None:
    topic, group = "streams", "new-protocol"
    assert api.post("/topics", json={"name": topic, "partitions": 1}).status_code == 201
    _produce(broker, topic, 3)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": group,
            "group.protocol": "consumer",
            "client.id": "streamer",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        eventually(lambda: consumer.poll(0.2) is not None, "a record")
        described = api.get(f"/groups/{group}").json()
        assert described["type"] == "consumer"
        assert [m["client_id"] for m in described["members"]] == ["streamer"]
        listed = {g["group_id"]: g for g in api.get("/groups").json()["groups"]}
        assert listed[group]["type"] == "consumer"
        body = {"topic": topic, "to": "latest", "dry_run": False}
        _error(api.post(f"/groups/{group}/offsets/reset", json=body), 409, "group_active")
    finally:
        consumer.close()


def test_broker_overview_counts_traffic_and_disk(broker: EmbeddedBroker, api: httpx.Client) -> None:
    """The console's overview: counters that grow with produce and fetch (a rate is the
    difference of two readings), the data directory's disk, and the visible topics."""
    topic = "overview-traffic"
    assert api.post("/topics", json={"name": topic, "partitions": 2}).status_code == 201
    before = api.get("/broker").json()
    _produce(broker, topic, 3)
    after = api.get("/broker").json()
    assert after["node_id"] == Settings().node_id
    assert after["traffic"]["records_in"] == before["traffic"]["records_in"] + 3
    assert after["traffic"]["bytes_in"] > before["traffic"]["bytes_in"]
    rows = {row["topic"]: row for row in after["topic_traffic"]}
    assert rows[topic]["records_in"] == 3
    assert after["topics"] >= 1 and after["partitions"] >= 2
    disk = after["disk"]
    assert 0 < disk["free_bytes"] <= disk["capacity_bytes"]
    assert after["version"]
