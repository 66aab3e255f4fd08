"""The admin API's message browser and produce, against records a Kafka producer wrote (and
read back by a Kafka consumer): paging, each start, filters, encodings, and bad input."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from shoal.embedded import EmbeddedBroker
from tests.server.admin_support import TIMEOUT_S, admin_client

pytestmark = pytest.mark.integration

BASE_TS = 1_700_000_000_000
RECORDS = 20
"""Per partition, in the topic "browse" (two partitions)."""
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    started = EmbeddedBroker(str(tmp_path_factory.mktemp("admin-messages"))).start()
    with admin_client(started) as api:
        assert api.post("/topics", json={"name": "browse", "partitions": 2}).status_code == 201
    producer = Producer({"bootstrap.servers": started.bootstrap_servers})
    for partition in (0, 1):
        for i in range(RECORDS):
            producer.produce(
                "browse",
                value=f"v-{partition}-{i}".encode(),
                key=f"k-{i}".encode(),
                partition=partition,
                timestamp=BASE_TS + i * 1000 + partition,
                headers=[("trace", f"t-{partition}-{i}".encode())] if i % 5 == 0 else None,
            )
    producer.produce("browse", value=b"\xff\x00binary", key=XSS.encode(), partition=1,
                     timestamp=BASE_TS + RECORDS * 1000)  # fmt: skip
    assert producer.flush(TIMEOUT_S) == 0
    yield started
    started.stop()


@pytest.fixture
def api(broker: EmbeddedBroker) -> Iterator[httpx.Client]:
    with admin_client(broker) as client:
        yield client


def _page(api: httpx.Client, **params: Any) -> dict[str, Any]:
    response = api.get("/topics/browse/messages", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _refused(api: httpx.Client, status: int, error: str, **params: Any) -> None:
    response = api.get("/topics/browse/messages", params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


def test_pages_of_one_partition_follow_the_cursor_to_the_end(api: httpx.Client) -> None:
    offsets: list[int] = []
    page = _page(api, partition=0, limit=7)
    while page["messages"]:
        offsets.extend(m["offset"] for m in page["messages"])
        page = _page(api, partition=0, limit=7, cursor=page["next_cursor"])
    assert offsets == list(range(RECORDS))
    assert page["next_cursor"] == f"0:{RECORDS}"
    assert page["end_offsets"] == {"0": RECORDS}
    first = _page(api, partition=0, limit=1)["messages"][0]
    assert first == {
        "partition": 0,
        "offset": 0,
        "timestamp": BASE_TS,
        "key": {"encoding": "utf-8", "data": "k-0"},
        "value": {"encoding": "utf-8", "data": "v-0-0"},
        "headers": [{"key": "trace", "value": {"encoding": "utf-8", "data": "t-0-0"}}],
    }


def test_each_start_and_filter(api: httpx.Client) -> None:
    newest = _page(api, partition=0, limit=3, **{"from": "newest"})
    assert [m["offset"] for m in newest["messages"]] == [17, 18, 19]
    at = _page(api, partition=0, limit=2, offset=5, **{"from": "offset"})
    assert [m["offset"] for m in at["messages"]] == [5, 6]
    by_time = _page(api, partition=0, limit=2, timestamp=BASE_TS + 10_500, **{"from": "timestamp"})
    assert [m["offset"] for m in by_time["messages"]] == [11, 12]
    late = _page(api, partition=0, timestamp=BASE_TS * 2, **{"from": "timestamp"})
    assert late["messages"] == []

    keyed = _page(api, partition=0, key="k-1")["messages"]
    assert [m["offset"] for m in keyed] == [1, *range(10, 20)]
    valued = _page(api, value="v-1-1")["messages"]  # both partitions
    assert {(m["partition"], m["offset"]) for m in valued} == {
        (1, 1),
        *((1, i) for i in range(10, 20)),
    }
    traced = _page(api, header="t-1-")["messages"]
    assert [(m["partition"], m["offset"]) for m in traced] == [(1, 0), (1, 5), (1, 10), (1, 15)]
    assert _page(api, header="trace", partition=0, limit=500)["next_cursor"] == f"0:{RECORDS}"


def test_all_partitions_merge_by_time_and_page_on(api: httpx.Client) -> None:
    seen: list[tuple[int, int]] = []
    page = _page(api, limit=15)
    while page["messages"]:
        stamps = [m["timestamp"] for m in page["messages"]]
        assert stamps == sorted(stamps)
        seen.extend((m["partition"], m["offset"]) for m in page["messages"])
        page = _page(api, limit=15, cursor=page["next_cursor"])
    assert sorted(seen) == [(0, i) for i in range(RECORDS)] + [(1, i) for i in range(RECORDS + 1)]
    assert len(seen) == len(set(seen))


def test_bytes_that_are_not_text_come_as_base64_and_markup_as_inert_json(
    api: httpx.Client,
) -> None:
    response = api.get(
        "/topics/browse/messages", params={"partition": 1, "offset": RECORDS, "from": "offset"}
    )
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    [message] = response.json()["messages"]
    assert message["key"] == {"encoding": "utf-8", "data": XSS}
    assert message["value"]["encoding"] == "base64"
    assert base64.b64decode(message["value"]["data"]) == b"\xff\x00binary"


def test_bad_browse_requests(api: httpx.Client) -> None:
    _refused(api, 400, "offset_out_of_range", partition=0, offset=RECORDS + 1, **{"from": "offset"})
    _refused(api, 400, "offset_out_of_range", partition=0, cursor=f"0:{RECORDS + 5}")
    _refused(api, 400, "invalid_page_size", limit=501)
    _refused(api, 400, "invalid_page_size", limit=0)
    _refused(api, 400, "invalid_parameter", limit="many")
    _refused(api, 404, "unknown_topic_or_partition", partition=2)
    _refused(api, 400, "invalid_parameter", **{"from": "yesterday"})
    _refused(api, 400, "invalid_parameter", **{"from": "offset"})
    _refused(api, 400, "invalid_parameter", timestamp=-5, **{"from": "timestamp"})
    _refused(api, 400, "invalid_parameter", cursor="garbage")
    _refused(api, 400, "invalid_parameter", partition=0, cursor="1:0")
    missing = api.get("/topics/nope/messages")
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown_topic_or_partition")


def _consume_one(broker: EmbeddedBroker, topic: str, partition: int, offset: int) -> Any:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "reader"})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        for _ in range(int(TIMEOUT_S / 0.5)):
            message = consumer.poll(0.5)
            if message is not None:
                assert message.error() is None, message.error()
                return message
        raise AssertionError("nothing consumed")
    finally:
        consumer.close()


def test_produce_one_message_a_kafka_consumer_reads(
    broker: EmbeddedBroker, api: httpx.Client
) -> None:
    assert api.post("/topics", json={"name": "produced", "partitions": 3}).status_code == 201
    body = {
        "key": "order-42",
        "value": {"encoding": "base64", "data": base64.b64encode(b"\x00\x01").decode()},
        "headers": [{"key": "source", "value": "console"}, {"key": "empty", "value": None}],
    }
    written = api.post("/topics/produced/messages", json=body)
    assert written.status_code == 201, written.text
    where = written.json()
    # The key lands where a Kafka producer's default (murmur2) partitioner puts it.
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    delivered: list[int] = []
    producer.produce(
        "produced", b"x", key=b"order-42", on_delivery=lambda e, m: delivered.append(m.partition())
    )
    assert producer.flush(TIMEOUT_S) == 0
    assert delivered == [where["partition"]]
    message = _consume_one(broker, "produced", where["partition"], where["offset"])
    assert (message.key(), message.value()) == (b"order-42", b"\x00\x01")
    assert message.headers() == [("source", b"console"), ("empty", None)]

    chosen = api.post("/topics/produced/messages", json={"partition": 2, "value": "v"})
    assert chosen.json()["partition"] == 2


def test_bad_produce_requests_write_nothing(api: httpx.Client) -> None:
    configs = {"cleanup.policy": "compact", "max.message.bytes": "1000"}
    assert api.post("/topics", json={"name": "strict", "configs": configs}).status_code == 201
    url = "/topics/strict/messages"
    for bad, status, error in [
        ({"key": 5, "value": "v"}, 400, "invalid_field"),
        ({"key": "k", "value": {"encoding": "base64", "data": "!!"}}, 400, "invalid_field"),
        ({"key": "k", "value": {"encoding": "rot13", "data": "x"}}, 400, "invalid_field"),
        ({"key": "k", "headers": {"a": "b"}}, 400, "invalid_field"),
        ({"key": "k", "headers": [{"value": "b"}]}, 400, "invalid_field"),
        ({"key": "k", "partition": 3}, 404, "unknown_topic_or_partition"),
        ({"key": "k", "partition": "0"}, 400, "invalid_field"),
        ({"value": "keyless on a compacted topic"}, 400, "invalid_record"),
        ({"key": "k", "value": "x" * 2000}, 400, "message_too_large"),
    ]:
        refused = api.post(url, json=bad)
        assert (refused.status_code, refused.json()["error"]) == (status, error), (
            bad,
            refused.text,
        )
    assert api.get("/topics/strict").json()["partitions"][0]["high_watermark"] == 0
    missing = api.post("/topics/nope/messages", json={"value": "v"})
    assert missing.status_code == 404
