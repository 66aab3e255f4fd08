"""The web console in a real browser (Debian's chromium driven by Playwright) against a real
broker: each page and action, with data that real Kafka clients wrote and read.

One broker, one browser and one browser context for the module (each test opens its own tab);
each test uses its own topic and group names. Waits are Playwright's waits on a condition (an
element, a text), never sleeps; the page's polling timer is driven by Playwright's clock. Set
``SHOAL_SCREENSHOT_DIR=docs/images`` to refresh the screenshots docs/console.md shows.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final
from urllib.parse import quote

import fastavro
import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from google.protobuf import descriptor_pool, message_factory
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from shoal.console.web import Backend
from shoal.embedded import EmbeddedBroker
from shoal.server.console import CONTENT_SECURITY_POLICY
from tests.console.support import console_server
from tests.peers.kafka_peer import KafkaPeer
from tests.server.admin_support import TIMEOUT_S, admin_client, eventually
from tests.support.sasl import add_user

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM: Final = "/usr/bin/chromium"
"""Debian's chromium (scripts/peers/chromium.sh installs it); Playwright never downloads one."""
WAIT_MS: Final = 15_000
"""How long a page may take to show what a test waits for (a loaded CI machine is slow)."""
expect.set_options(timeout=WAIT_MS)

XSS_SCRIPT: Final = "<script>window.__pwned = 1</script>"
XSS_IMG: Final = '<img src=x onerror="window.__pwned = 1">'
POLL_MS: Final = 3000
"""console.js's OVERVIEW_POLL_MS: how often an open group page re-reads the group."""
AWKWARD_SCHEMA: Final = '{"type": "record", "name": "Awkward", "fields": []}'
TAIL_POLL_MS: Final = 1000
"""console.js's TAIL_POLL_MS: how often a live tail asks for new messages."""


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser binary; a missing one fails the module with how to get it."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/peers/chromium.sh` (make peers)")
    return CHROMIUM


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    # No initial rebalance delay: a consumer's first join answers at once (Kafka waits 3 s for
    # more members; these tests have one).
    started = EmbeddedBroker(
        str(tmp_path_factory.mktemp("console")), group_initial_rebalance_delay_ms=0
    ).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def context(browser: Browser, broker: EmbeddedBroker) -> Iterator[BrowserContext]:
    shared = browser.new_context(base_url=broker.http_url, viewport={"width": 1280, "height": 800})
    yield shared
    shared.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A tab of its own (a fresh page state, its own clock) in the module's context."""
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    opened.close()
    assert errors == [], f"the console's script failed: {errors}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("SHOAL_SCREENSHOT_DIR")
    if configured:
        return Path(configured)
    return tmp_path_factory.mktemp("screenshots")


def _open(page: Page, hash_path: str) -> None:
    """Show the console's page at ``hash_path``, freshly read (the same hash again would not
    route, so that reloads)."""
    if page.url.endswith("/#" + hash_path):
        page.reload()
    else:
        page.goto("/#" + hash_path)
    expect(page.locator("body[data-loading=false]")).to_have_count(1)


def _produce(broker: EmbeddedBroker, topic: str, records: list[dict[str, object]]) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for record in records:
        producer.produce(topic, **record)  # type: ignore[arg-type]
    assert producer.flush(TIMEOUT_S) == 0


def test_overview_shows_the_broker_and_its_rates(page: Page) -> None:
    response = page.goto("/")
    assert response is not None and response.ok
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator(".card", has_text="Broker")).to_contain_text("node 1")
    expect(page.locator(".card", has_text="Disk free")).to_contain_text("of ")
    expect(page.locator("svg.spark")).to_have_count(4)


def test_create_a_topic_edit_a_config_and_delete_with_confirmation(
    page: Page, broker: EmbeddedBroker, shots: Path
) -> None:
    _open(page, "/topics")
    page.fill("#new-topic-name", "console-orders")
    page.fill("#new-topic-partitions", "3")
    page.click("#create-topic button[type=submit]")
    expect(page.locator("#topic-name")).to_have_text("console-orders")
    expect(page.locator("#partitions tbody tr")).to_have_count(3)
    # Leader, replicas, in sync: the one broker (node 1) everywhere.
    cells = page.locator("#partitions tbody tr").first.locator("td")
    expect(cells.nth(4)).to_have_text("1")
    expect(cells.nth(5)).to_have_text("1")
    expect(cells.nth(6)).to_have_text("1")
    page.fill("[data-config='retention.ms']", "3600000")
    page.click("[data-save='retention.ms']")
    expect(page.locator("#topic-status")).to_contain_text("Set retention.ms = 3600000")
    with admin_client(broker) as api:
        configs = {c["name"]: c for c in api.get("/topics/console-orders").json()["configs"]}
    assert configs["retention.ms"]["value"] == "3600000"
    assert configs["retention.ms"]["source"] == "TOPIC_CONFIG"
    page.screenshot(path=shots / "console-topic.png", full_page=True)

    _open(page, "/topics")
    page.fill("#topic-search", "orders")
    expect(page.locator("#topics tbody tr")).to_have_count(1)
    page.fill("#topic-search", "")
    page.screenshot(path=shots / "console-topics.png", full_page=True)

    page.fill("#new-topic-name", "console-doomed")
    page.click("#create-topic button[type=submit]")
    expect(page.locator("#topic-name")).to_have_text("console-doomed")
    expect(page.locator("#delete-topic")).to_be_disabled()
    page.fill("#confirm-delete", "console-doome")  # not the name: still refused
    expect(page.locator("#delete-topic")).to_be_disabled()
    page.fill("#confirm-delete", "console-doomed")
    page.click("#delete-topic")
    expect(page.locator("h1")).to_have_text("Topics")
    with admin_client(broker) as api:
        assert api.get("/topics/console-doomed").status_code == 404

    _open(page, "/topics")  # a bad name: the broker's answer, shown as text
    page.fill("#new-topic-name", "bad name!")
    page.click("#create-topic button[type=submit]")
    expect(page.locator(".error")).to_contain_text("invalid_topic_exception")


def test_produce_then_browse_with_each_filter_and_inert_markup(
    page: Page, broker: EmbeddedBroker, shots: Path
) -> None:
    topic = "console-browse"
    with admin_client(broker) as api:
        assert api.post("/topics", json={"name": topic, "partitions": 2}).status_code == 201
    _open(page, f"/produce/{topic}")
    page.fill("#produce-partition", "0")
    page.fill("#produce-key", "order-1")
    page.fill("#produce-value", '{"id": 1, "item": "lamp"}')
    page.fill("#produce-headers", "source=console\ntrace=abc")
    page.click("#produce button[type=submit]")
    expect(page.locator("#produce-status")).to_contain_text("partition 0 at offset 0")
    page.screenshot(path=shots / "console-produce.png", full_page=True)
    # Later than every other record here, and inside the hour ahead of the broker's clock that
    # message.timestamp.after.max.ms allows by default (as Kafka's).
    stamp_ms = int(time.time() * 1000) + 1_800_000
    _produce(
        broker,
        topic,
        [
            {"key": b"order-2", "value": b"plain text", "partition": 0},
            {"key": XSS_SCRIPT, "value": XSS_IMG, "partition": 1, "headers": [("h", XSS_SCRIPT)]},
            {"key": b"bin", "value": bytes([0, 1, 2, 255]), "partition": 1, "timestamp": stamp_ms},
        ],
    )

    _open(page, f"/messages/{topic}")
    rows = page.locator("#messages tr.message")
    expect(rows).to_have_count(4)
    # Markup in a key, value or header is shown as its characters and never runs.
    expect(page.locator("#messages td.key", has_text=XSS_SCRIPT)).to_have_count(1)
    expect(page.locator("#messages td.value", has_text=XSS_IMG)).to_have_count(1)
    expect(page.locator("#messages td.headers", has_text=XSS_SCRIPT)).to_have_count(1)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#messages img, #messages script").count() == 0
    # A JSON value pretty-printed, a binary one in hex.
    page.locator("#messages tr.message", has_text="lamp").click()
    expect(page.locator("pre.json").first).to_contain_text('"item": "lamp"')
    page.locator("#messages tr.message", has_text="0x").click()
    expect(page.locator("pre.hex", has_text="00 01 02 ff")).to_have_count(1)
    page.screenshot(path=shots / "console-messages.png", full_page=True)

    def browse(**fields: str) -> list[str]:
        """Search with exactly ``fields`` set in the form (the others back to their defaults),
        in place: the page re-renders from the new hash, no reload."""
        page.locator("#page-info").evaluate("el => el.dataset.stale = 'yes'")
        for name in ("partition", "from"):
            page.select_option(
                f"#{name}", fields.get(name, "" if name == "partition" else "oldest")
            )
        for name in ("offset", "timestamp", "key", "value", "header"):
            page.fill(f"#{name}", fields.get(name, ""))
        page.click("#browse button[type=submit]")
        expect(page.locator("#page-info:not([data-stale])")).to_be_visible()
        expect(page.locator("body[data-loading=false]")).to_have_count(1)
        cells = page.locator("#messages tr.message td:nth-child(2)").all_inner_texts()
        keys = page.locator("#messages tr.message td.key").all_inner_texts()
        return [f"{k}@{o}" for k, o in zip(keys, cells, strict=True)]

    assert browse(key="order-") == ["order-1@0", "order-2@1"]
    assert browse(value="plain") == ["order-2@1"]
    assert browse(header="console") == ["order-1@0"]
    assert browse(header="script") == [f"{XSS_SCRIPT}@0"]
    assert browse(partition="1") == [f"{XSS_SCRIPT}@0", "bin@1"]
    assert browse(partition="0", **{"from": "offset"}, offset="1") == ["order-2@1"]
    assert browse(**{"from": "timestamp"}, timestamp=str(stamp_ms)) == ["bin@1"]
    newest = browse(partition="0", **{"from": "newest"})
    assert newest == ["order-1@0", "order-2@1"]
    _open(page, f"/messages/{topic}?partition=0&from=offset&offset=99")  # past the end
    expect(page.locator(".error")).to_contain_text("offset_out_of_range")

    # Export the page as JSON (what the API gave) and CSV (text; markup and formulas inert).
    _open(page, f"/messages/{topic}")
    with page.expect_download() as exported:
        page.click("#export-json")
    with admin_client(broker) as api:
        truth = api.get(f"/topics/{topic}/messages", params={"limit": "50"}).json()["messages"]
    assert json.loads(Path(exported.value.path()).read_text()) == truth
    with page.expect_download() as exported:
        page.click("#export-csv")
    csv_lines = Path(exported.value.path()).read_text().splitlines()
    assert csv_lines[0] == "partition,offset,timestamp,key,value,headers"
    assert len(csv_lines) == 5
    assert '"<img src=x onerror=""window.__pwned = 1"">"' in csv_lines[3]
    assert "base64:AAEC/w==" in csv_lines[4]

    # Live tail: the newest messages, then each one produced after the page opened.
    page.clock.install()  # the tail's polling timer runs when the test says
    page.click("#live-tail")
    expect(page.locator("#tail-info")).to_contain_text("Live: 4 messages")
    with admin_client(broker) as api:
        body = {"partition": 1, "key": "tailed", "value": "=1+1"}
        assert api.post(f"/topics/{topic}/messages", json=body).status_code == 201
    page.clock.run_for(TAIL_POLL_MS)
    expect(page.locator("#messages td.key", has_text="tailed")).to_have_count(1)
    expect(page.locator("#tail-info")).to_contain_text("Live: 5 messages")
    page.click("#stop-tail")
    expect(page.locator("#page-info")).to_be_visible()


PROTO: Final = """
syntax = "proto3";
package shop;

message Item { string sku = 1; }

message Order {
  enum Status { NEW = 0; PAID = 1; }
  string id = 1;
  int64 amount = 2;
  repeated string tags = 3;
  Item item = 4;
  Status status = 5;
  map<string, int32> counts = 6;
  sint32 delta = 7;
  double price = 8;
}
"""


def _register(registry: httpx.Client, subject: str, schema: str, kind: str) -> int:
    answer = registry.post(
        f"/subjects/{subject}/versions", json={"schema": schema, "schemaType": kind}
    )
    assert answer.status_code == 200, answer.text
    schema_id: int = answer.json()["id"]
    return schema_id


def _framed(schema_id: int, payload: bytes, indexes: bytes = b"") -> bytes:
    """Confluent's wire format: magic 0, the schema id (4 bytes, big-endian), [indexes], data."""
    return b"\x00" + schema_id.to_bytes(4, "big") + indexes + payload


def test_avro_json_schema_and_protobuf_values_are_decoded(
    page: Page, broker: EmbeddedBroker, shots: Path
) -> None:
    topic = "console-decoded"
    avro = {
        "type": "record",
        "name": "Payment",
        "namespace": "shop",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "note", "type": "string"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["CARD", "CASH"]}},
            {"name": "amount", "type": ["null", "double"]},
        ],
    }
    media = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    with httpx.Client(base_url=broker.http_url, headers=media, timeout=TIMEOUT_S) as registry:
        avro_id = _register(registry, f"{topic}-avro", json.dumps(avro), "AVRO")
        json_id = _register(registry, f"{topic}-json", json.dumps({"type": "object"}), "JSON")
        proto_id = _register(registry, f"{topic}-proto", PROTO, "PROTOBUF")
        serialized = registry.get(f"/schemas/ids/{proto_id}", params={"format": "serialized"})
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(base64.b64decode(serialized.json()["schema"]))
    order_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))
    order = order_class(id="o-1", amount=-(2**40), tags=["a", "b"], status=1, delta=-3, price=2.5)
    order.item.sku = "lamp-1"
    order.counts["x"] = 7
    out = io.BytesIO()
    record = {"id": 42, "note": "<b>hi</b>", "tags": ["t"], "kind": "CASH", "amount": 9.5}
    fastavro.schemaless_writer(out, fastavro.parse_schema(avro), record)
    with admin_client(broker) as api:
        assert api.post("/topics", json={"name": topic}).status_code == 201
    _produce(
        broker,
        topic,
        [
            {"key": b"avro", "value": _framed(avro_id, out.getvalue()), "partition": 0},
            {"key": b"json", "value": _framed(json_id, b'{"sku": "lamp-1"}'), "partition": 0},
            # Order is the file's second message: indexes [1] (count 1, index 1; zigzag).
            {
                "key": b"proto",
                "value": _framed(proto_id, order.SerializeToString(), b"\x02\x02"),
                "partition": 0,
            },
        ],
    )
    _open(page, f"/messages/{topic}")
    decoded = page.locator("#messages td.value.decoded")
    expect(decoded).to_have_count(3)
    expect(decoded.nth(0)).to_contain_text(
        '{"id":42,"note":"<b>hi</b>","tags":["t"],"kind":"CASH","amount":9.5}'
    )
    expect(decoded.nth(0)).to_contain_text(f"AVRO #{avro_id}")
    expect(decoded.nth(1)).to_contain_text('{"sku":"lamp-1"}')
    expect(decoded.nth(2)).to_contain_text(f"PROTOBUF #{proto_id}")
    expect(decoded.nth(2)).to_contain_text(
        '{"id":"o-1","amount":-1099511627776,"tags":["a","b"],"item":{"sku":"lamp-1"},'
        '"status":"PAID","counts":{"x":7},"delta":-3,"price":2.5}'
    )
    assert page.locator("#messages b").count() == 0  # decoded text is text too
    proto_row = page.locator("#messages tr.message", has=page.locator("td.key", has_text="proto"))
    proto_row.click()
    expect(page.locator("pre.decoded-json:visible")).to_contain_text('"status": "PAID"')
    page.screenshot(path=shots / "console-decoded.png", full_page=True)

    # Produce with a schema: the form's JSON is written as the subject's latest Avro version.
    _open(page, f"/produce/{topic}")
    page.select_option("#produce-schema", f"{topic}-avro")
    page.fill("#produce-partition", "0")
    written = {"id": 7, "note": "from the form", "tags": [], "kind": "CARD", "amount": None}
    page.fill("#produce-value", json.dumps(written))
    page.click("#produce button[type=submit]")
    expect(page.locator("#produce-status")).to_contain_text("at offset 3")
    with admin_client(broker) as api:
        query = {"partition": "0", "from": "offset", "offset": "3"}
        (message,) = api.get(f"/topics/{topic}/messages", params=query).json()["messages"]
    value = message["value"]  # UTF-8 text when the bytes happen to be valid UTF-8
    data = value["data"]
    framed = data.encode() if value["encoding"] == "utf-8" else base64.b64decode(data)
    assert framed[:5] == b"\x00" + avro_id.to_bytes(4, "big")
    parsed = fastavro.parse_schema(avro)
    assert fastavro.schemaless_reader(io.BytesIO(framed[5:]), parsed, parsed) == written
    page.fill("#produce-value", '{"id": "not a number"}')  # refused in the page, nothing sent
    page.click("#produce button[type=submit]")
    expect(page.locator("#produce-status .error")).to_contain_text("id: expected an integer")
    # Protobuf: the file's first message (Item), message indexes [0].
    page.select_option("#produce-schema", f"{topic}-proto")
    page.fill("#produce-value", '{"sku": "from-the-form"}')
    page.click("#produce button[type=submit]")
    expect(page.locator("#produce-status")).to_contain_text("at offset 4")
    with admin_client(broker) as api:
        query = {"partition": "0", "from": "offset", "offset": "4"}
        (message,) = api.get(f"/topics/{topic}/messages", params=query).json()["messages"]
    framed = message["value"]["data"].encode()  # valid UTF-8 here
    assert framed[:6] == b"\x00" + proto_id.to_bytes(4, "big") + b"\x00"
    item_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Item"))
    assert item_class.FromString(framed[6:]).sku == "from-the-form"
    # Every field kind of Order (first in a file of its own): written by the page, read back
    # by protobuf's own parser.
    orders_proto = (
        PROTO.replace("message Item { string sku = 1; }\n", "")
        + "message Item { string sku = 1; }\n"
    )
    with httpx.Client(base_url=broker.http_url, headers=media, timeout=TIMEOUT_S) as registry:
        orders_id = _register(registry, f"{topic}-orders", orders_proto, "PROTOBUF")
        orders_serialized = registry.get(f"/schemas/ids/{orders_id}?format=serialized").json()
    orders_pool = descriptor_pool.DescriptorPool()
    orders_pool.AddSerializedFile(base64.b64decode(orders_serialized["schema"]))
    orders_class = message_factory.GetMessageClass(orders_pool.FindMessageTypeByName("shop.Order"))
    form_order = {
        "id": "o-2",
        "amount": -(2**40),
        "tags": ["x", "y"],
        "item": {"sku": "s"},
        "status": "PAID",
        "counts": {"k": 3},
        "delta": -9,
        "price": 1.25,
    }
    _open(page, f"/produce/{topic}")
    page.select_option("#produce-schema", f"{topic}-orders")
    page.fill("#produce-partition", "0")
    page.fill("#produce-value", json.dumps(form_order))
    page.click("#produce button[type=submit]")
    expect(page.locator("#produce-status")).to_contain_text("at offset 5")
    with admin_client(broker) as api:
        query = {"partition": "0", "from": "offset", "offset": "5"}
        (message,) = api.get(f"/topics/{topic}/messages", params=query).json()["messages"]
    value = message["value"]
    data = value["data"]
    framed = data.encode() if value["encoding"] == "utf-8" else base64.b64decode(data)
    read = orders_class.FromString(framed[6:])
    assert (read.id, read.amount, list(read.tags), read.item.sku) == (
        "o-2",
        -(2**40),
        ["x", "y"],
        "s",
    )
    assert (read.status, dict(read.counts), read.delta, read.price) == (1, {"k": 3}, -9, 1.25)
    _open(page, f"/messages/{topic}?decode=0")  # raw bytes on request
    expect(page.locator("#messages td.value.decoded")).to_have_count(0)


COMMON_PROTO: Final = """
syntax = "proto3";
package shop.common;

message Money { int64 cents = 1; string currency = 2; }
enum Kind { SALE = 0; REFUND = 1; }
"""

INVOICE_PROTO: Final = """
syntax = "proto3";
package shop;
import "common.proto";

message Header { string id = 1; }
message Invoice {
  message Line { string sku = 1; shop.common.Money price = 2; }
  string id = 1;
  shop.common.Money total = 2;
  repeated Line lines = 3;
  shop.common.Kind kind = 4;
}
"""

LINE: Final = b"\x0a\x01s" + b"\x12\x02\x08\x05"
"""Invoice.Line {sku: "s", price: {cents: 5}}, encoded by hand (tag, length, bytes)."""
INVOICE: Final = (
    b"\x0a\x03i-1"  # id
    + b"\x12\x08" + b"\x08\xfa\x01" + b"\x12\x03EUR"  # total: Money {cents 250, EUR}
    + b"\x1a\x07" + LINE  # lines
    + b"\x20\x01"  # kind: REFUND
)  # fmt: skip


def test_protobuf_with_imports_is_decoded_and_produced_by_message_name(
    page: Page, broker: EmbeddedBroker
) -> None:
    """A schema that imports another (a registry reference) decodes with the imported types,
    as Confluent's deserializer resolves references; produce writes the message named."""
    topic = "console-invoices"
    media = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    with httpx.Client(base_url=broker.http_url, headers=media, timeout=TIMEOUT_S) as registry:
        _register(registry, f"{topic}-common", COMMON_PROTO, "PROTOBUF")
        answer = registry.post(
            f"/subjects/{topic}-value/versions",
            json={
                "schema": INVOICE_PROTO,
                "schemaType": "PROTOBUF",
                "references": [
                    {"name": "common.proto", "subject": f"{topic}-common", "version": 1}
                ],
            },
        )
        assert answer.status_code == 200, answer.text
        invoice_id: int = answer.json()["id"]
    with admin_client(broker) as api:
        assert api.post("/topics", json={"name": topic}).status_code == 201
    # Invoice is the file's second message: indexes [1] (count 1, index 1; zigzag).
    _produce(broker, topic, [{"value": _framed(invoice_id, INVOICE, b"\x02\x02"), "partition": 0}])
    _open(page, f"/messages/{topic}")
    decoded = page.locator("#messages td.value.decoded")
    expect(decoded).to_have_count(1)
    expect(decoded.first).to_contain_text(
        '{"id":"i-1","total":{"cents":250,"currency":"EUR"},'
        '"lines":[{"sku":"s","price":{"cents":5}}],"kind":"REFUND"}'
    )

    def produced(name: str, value: str, offset: int) -> bytes:
        _open(page, f"/produce/{topic}")
        page.select_option("#produce-schema", f"{topic}-value")
        page.fill("#produce-partition", "0")
        page.fill("#produce-message", name)
        page.fill("#produce-value", value)
        page.click("#produce button[type=submit]")
        expect(page.locator("#produce-status")).to_contain_text(f"at offset {offset}")
        with admin_client(broker) as api:
            query = {"partition": "0", "from": "offset", "offset": str(offset)}
            (message,) = api.get(f"/topics/{topic}/messages", params=query).json()["messages"]
        data = message["value"]["data"]
        return data.encode() if message["value"]["encoding"] == "utf-8" else base64.b64decode(data)

    line = '{"sku": "s", "price": {"cents": 5}}'
    framing = b"\x00" + invoice_id.to_bytes(4, "big")
    # A nested message: indexes [1, 0] (count 2, then 1 and 0; zigzag).
    assert produced("Invoice.Line", line, 1) == framing + b"\x04\x02\x00" + LINE
    assert produced("shop.Header", '{"id": "h"}', 2) == framing + b"\x00" + b"\x0a\x01h"
    page.fill("#produce-message", "Receipt")
    page.click("#produce button[type=submit]")
    expect(page.locator("#produce-status .error")).to_contain_text("Receipt: no such message")
    with admin_client(broker) as api:
        assert api.get(f"/topics/{topic}").json()["partitions"][0]["high_watermark"] == 3


def test_group_offsets_reset_dry_run_then_apply(
    page: Page, broker: EmbeddedBroker, shots: Path
) -> None:
    topic, group = "console-lagging", "console-readers"
    with admin_client(broker) as api:
        assert api.post("/topics", json={"name": topic}).status_code == 201
    _produce(broker, topic, [{"value": f"v{i}".encode(), "partition": 0} for i in range(5)])
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": group,
            "client.id": "console-test",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        seen = []
        eventually(
            lambda: bool(seen.append(consumer.poll(0.2)) or len([m for m in seen if m]) >= 3),
            "3 records",
        )
        consumer.commit(asynchronous=False)
        # While its consumer is up: the member is shown, and a reset is refused.
        _open(page, f"/groups/{group}")
        expect(page.locator("#members td:text-is('console-test')")).to_have_count(1)
        page.select_option("#reset-to", "earliest")
        page.click("#reset-dry-run")
        expect(page.locator("#reset-preview .error")).to_contain_text("group_active")
        expect(page.locator("#reset-apply")).to_be_disabled()
    finally:
        consumer.close()

    _open(page, "/groups")
    row = page.locator("#groups tr", has_text=group)
    expect(row).to_have_count(1)
    # Burrow's verdict: one commit leaving 2 records behind is an error (STALL, or STOP once
    # time passes it), its reason in the tooltip.
    badge = row.locator("td.status .badge.status-error")
    expect(badge).to_have_text(re.compile("^(STALL|STOP)$"))
    expect(badge).to_have_attribute("title", re.compile(f"^{topic}-0 (STALL|STOP): .*2"))
    page.screenshot(path=shots / "console-groups.png", full_page=True)
    page.clock.install()  # the group page's re-read timer runs when the test says
    page.click(f"#groups a:text-is('{group}')")
    expect(page.locator("#offsets td.lag")).to_have_text(["2"])
    expect(page.locator("#group-status .badge.status-error")).to_have_count(1)
    expect(page.locator("#offsets td.status .badge")).to_have_attribute(
        "title", re.compile("2 records wait|lag 2")
    )

    page.select_option("#reset-topic", topic)
    page.select_option("#reset-to", "earliest")
    expect(page.locator("#reset-apply")).to_be_disabled()
    page.click("#reset-dry-run")
    expect(page.locator("#reset-preview")).to_contain_text("Dry run")
    expect(page.locator("#reset-preview tbody td").nth(3)).to_have_text("0")
    with admin_client(broker) as api:  # a dry run changes nothing
        offsets = api.get(f"/groups/{group}").json()["offsets"]
    assert [o["committed_offset"] for o in offsets] == [3]
    page.screenshot(path=shots / "console-group.png", full_page=True)
    page.click("#reset-apply")
    expect(page.locator("#reset-preview")).to_contain_text("Offsets committed")
    expect(page.locator("#offsets td.lag")).to_have_text(["5"])
    # The page re-reads the group: new records show in the lag and its trend.
    _produce(broker, topic, [{"value": b"late", "partition": 0}] * 2)
    page.clock.run_for(POLL_MS)
    expect(page.locator("#lag-trend .value")).to_have_text("7")
    expect(page.locator("#offsets td.lag")).to_have_text(["7"])
    with admin_client(broker) as api:
        offsets = api.get(f"/groups/{group}").json()["offsets"]
    assert [o["committed_offset"] for o in offsets] == [0]


def test_schemas_show_subjects_versions_and_compatibility(
    page: Page, broker: EmbeddedBroker, shots: Path
) -> None:
    subject = "console-payments-value"
    schema = {"type": "record", "name": "Payment", "fields": [{"name": "id", "type": "long"}]}
    v2 = {
        **schema,
        "fields": [*schema["fields"], {"name": "note", "type": "string", "default": ""}],
    }
    media = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    with httpx.Client(base_url=broker.http_url, headers=media, timeout=TIMEOUT_S) as registry:
        for body in (schema, v2):
            answer = registry.post(
                f"/subjects/{subject}/versions", json={"schema": json.dumps(body)}
            )
            assert answer.status_code == 200, answer.text
        answer = registry.put(f"/config/{subject}", json={"compatibility": "FULL"})
        assert answer.status_code == 200, answer.text
    _open(page, "/schemas")
    page.click(f"#subjects a:text-is('{subject}')")
    expect(page.locator("#compatibility")).to_have_text("FULL")
    expect(page.locator("#schema-text")).to_contain_text('"note"')
    page.click("#show-diff")  # version 2 against version 1: the added field
    expect(page.locator("#schema-diff .diff-add")).to_contain_text(['+       "name": "note",'])
    expect(page.locator("#schema-diff .diff-del")).to_have_count(0)  # nothing was removed
    # A candidate without a default for a new field breaks FULL compatibility; with one, fine.
    breaking = {**schema, "fields": [*schema["fields"], {"name": "n", "type": "string"}]}
    page.fill("#candidate", json.dumps(breaking))
    page.click("#check-candidate")
    expect(page.locator("#candidate-verdict .error")).to_contain_text("Not compatible")
    page.fill("#candidate", json.dumps(v2))
    page.click("#check-candidate")
    expect(page.locator("#candidate-verdict")).to_contain_text("Compatible with the latest")
    page.screenshot(path=shots / "console-schemas.png", full_page=True)
    page.select_option("#set-compatibility", "BACKWARD_TRANSITIVE")
    page.click("#apply-compatibility")
    expect(page.locator("#compatibility")).to_have_text("BACKWARD_TRANSITIVE")
    with httpx.Client(base_url=broker.http_url, timeout=TIMEOUT_S) as registry:
        level = registry.get(f"/config/{subject}").json()["compatibilityLevel"]
    assert level == "BACKWARD_TRANSITIVE"
    page.click("a:text-is('1')")
    expect(page.locator("#schema-text")).not_to_contain_text('"note"')
    expect(page.locator("#schema-text")).to_contain_text('"Payment"')


def test_dlq_shows_failure_columns_and_redrives_a_record(
    page: Page, broker: EmbeddedBroker, shots: Path
) -> None:
    original, dead = "console-payments", "console-payments.dlq"
    with admin_client(broker) as api:
        for name in (original, dead):
            assert api.post("/topics", json={"name": name}).status_code == 201
    failure = [
        ("shoal.dlq.original.topic", original.encode()),
        ("shoal.dlq.original.partition", b"0"),
        ("shoal.dlq.original.offset", b"41"),
        ("shoal.dlq.exception.type", b"builtins.ValueError"),
        ("shoal.dlq.exception.message", b"amount must be positive"),
        ("shoal.dlq.attempts", b"3"),
        ("trace", b"t-1"),
    ]
    _produce(broker, dead, [{"key": b"pay-7", "value": b'{"amount": -5}', "headers": failure}])
    _open(page, "/dlq")
    page.click(f"#dlqs a:text-is('{dead}')")
    row = page.locator("#dlq-messages tr.message")
    expect(row).to_have_count(1)
    for shown in (original, "builtins.ValueError", "amount must be positive", "3"):
        expect(row.locator("td", has_text=shown).first).to_be_visible()
    page.screenshot(path=shots / "console-dlq.png", full_page=True)
    row.locator("button.redrive-one").click()
    expect(page.locator("#redrive-status")).to_contain_text("Redrove 1 record")

    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": "console-redriven",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([original])
        got = []
        eventually(lambda: bool(got.append(consumer.poll(0.2)) or any(got)), "the redriven record")
    finally:
        consumer.close()
    record = next(m for m in got if m is not None)
    assert record.error() is None
    assert (record.key(), record.value()) == (b"pay-7", b'{"amount": -5}')
    assert record.headers() == [("trace", b"t-1")]  # the failure headers stay in the DLQ

    # Redrive all: every record of the DLQ (a log: the one redriven above goes again).
    _produce(broker, dead, [{"key": b"pay-8", "value": b"{}", "headers": failure}])
    _open(page, f"/dlq/{dead}")
    expect(page.locator("#dlq-messages tr.message")).to_have_count(2)
    page.click("#redrive-all")
    expect(page.locator("#redrive-status")).to_contain_text("Redrove 2 record(s)")
    with admin_client(broker) as api:
        partitions = api.get(f"/topics/{original}").json()["partitions"]
    assert sum(p["high_watermark"] for p in partitions) == 3

    # A record whose header names an internal topic is not redriven there; one the user
    # sends to a topic they name explicitly is.
    forged = [("shoal.dlq.original.topic", b"__consumer_offsets")]
    _produce(broker, dead, [{"key": b"pay-9", "value": b"{}", "headers": forged}])
    retry = "console-payments-retry"
    with admin_client(broker) as api:
        assert api.post("/topics", json={"name": retry}).status_code == 201
    _open(page, f"/dlq/{dead}")
    last = page.locator("#dlq-messages tr.message[data-offset='2']")
    last.locator("button.redrive-one").click()
    expect(page.locator("#redrive-status .error")).to_contain_text("internal topic")
    page.fill("#redrive-to", retry)
    last.locator("button.redrive-one").click()
    expect(page.locator("#redrive-status")).to_contain_text("Redrove 1 record")
    with admin_client(broker) as api:
        assert api.get(f"/topics/{retry}").json()["partitions"][0]["high_watermark"] == 1
        partitions = api.get(f"/topics/{original}").json()["partitions"]
    assert sum(p["high_watermark"] for p in partitions) == 3


def test_security_page_lists_users_and_says_when_no_authorizer_runs(
    page: Page, broker: EmbeddedBroker, shots: Path
) -> None:
    add_user(broker, "console-reader", "console-secret")
    _open(page, "/security")
    expect(page.locator("#no-authorizer")).to_be_visible()  # this broker has no authorizer
    row = page.locator("#users tr", has=page.locator("td:text-is('console-reader')"))
    expect(row).to_contain_text("SCRAM-SHA-256")
    # A user set from the page gets a credential (listed by the API, never its password) and
    # loses it by the row's button.
    page.fill("#user-name", "console-writer")
    page.select_option("#user-mechanism", "SCRAM-SHA-512")
    page.fill("#user-password", "writer-secret")
    page.fill("#user-iterations", "4096")
    page.click("#set-user button[type=submit]")
    expect(page.locator("#security-status")).to_contain_text("Set SCRAM-SHA-512 for console-writer")
    writer = page.locator("#users tr", has=page.locator("td:text-is('console-writer')"))
    expect(writer).to_contain_text("SCRAM-SHA-512 (4096)")
    page.screenshot(path=shots / "console-security.png", full_page=True)
    with admin_client(broker) as api:
        users = {u["user"]: u for u in api.get("/users").json()["users"]}
    assert users["console-writer"]["mechanisms"] == [
        {"mechanism": "SCRAM-SHA-512", "iterations": 4096}
    ]
    writer.locator("button.delete-credential").click()
    expect(page.locator("#security-status")).to_contain_text("Deleted SCRAM-SHA-512")
    expect(writer).to_have_count(0)
    # Without an authorizer an ACL cannot be added: the broker's answer, shown as text.
    page.fill("#acl-resource-name", "orders")
    page.fill("#acl-principal", "User:console-writer")
    page.click("#add-acl button[type=submit]")
    expect(page.locator("#security-status .error")).to_contain_text("security_disabled")


def test_overview_counts_traffic_per_topic(page: Page, broker: EmbeddedBroker, shots: Path) -> None:
    """Late in the module, so its screenshot has the other tests' topics and groups too."""
    _produce(broker, "console-overview", [{"value": b"a"}, {"value": b"b"}])
    _open(page, "/")
    row = page.locator("tr", has=page.locator("a:text-is('console-overview')"))
    expect(row.locator("td").nth(1)).to_have_text("2")  # records in
    page.screenshot(path=shots / "console-overview.png", full_page=True)


def test_export_all_matching_streams_every_match(page: Page, broker: EmbeddedBroker) -> None:
    """More matches than a page holds: the page's export has the page, "Export all matching"
    every match of the query, streamed by the API."""
    topic = "console-export-all"
    with admin_client(broker) as api:
        assert api.post("/topics", json={"name": topic, "partitions": 2}).status_code == 201
    records: list[dict[str, object]] = [
        {"key": f"k{i}".encode(), "value": f"keep-{i}".encode(), "partition": i % 2}
        for i in range(60)
    ]
    records += [{"value": b"drop", "partition": 0} for _ in range(20)]
    records.append({"key": b"formula", "value": b"=keep()", "partition": 1})
    _produce(broker, topic, records)

    _open(page, f"/messages/{topic}?value=keep")
    expect(page.locator("#messages tr.message")).to_have_count(50)  # one page
    # The link says where an export stops and that a stopped one says so.
    expect(page.locator("#export-all-json")).to_have_attribute("title", re.compile("100,000.*note"))
    with page.expect_download() as exported:
        page.click("#export-all-json")
    everything = json.loads(Path(exported.value.path()).read_text())
    assert exported.value.suggested_filename == f"{topic}.json"
    assert len(everything) == 61
    assert all("keep" in m["value"]["data"] for m in everything)
    assert sorted((m["partition"], m["offset"]) for m in everything) == sorted(
        {(m["partition"], m["offset"]) for m in everything}
    )  # each once
    with page.expect_download() as exported:
        page.click("#export-all-csv")
    lines = Path(exported.value.path()).read_text().splitlines()
    assert lines[0] == "partition,offset,timestamp,key,value,headers"
    assert len(lines) == 62
    assert any(line.endswith(",formula,'=keep(),") for line in lines)  # a formula made inert


def test_a_page_answered_late_never_draws_over_the_next_one(
    page: Page, broker: EmbeddedBroker
) -> None:
    """The user opens a topic, whose read is held back, then moves on to the groups page: the
    topic's late answer must not draw over it (issue 17)."""
    topic = "console-late"
    with admin_client(broker) as api:
        assert api.post("/topics", json={"name": topic}).status_code == 201
    held: list[Route] = []
    page.route(f"**/api/v1/topics/{topic}", lambda route: held.append(route))
    with page.expect_request(f"**/api/v1/topics/{topic}"):
        page.goto(f"/#/topics/{topic}")
    page.evaluate("location.hash = '#/groups'")
    expect(page.locator("h1")).to_have_text("Consumer groups")
    expect(page.locator("body[data-loading=false]")).to_have_count(1)
    assert len(held) == 1
    # The page aborted its read when the user moved on; a browser that still wanted the
    # answer gets it now. Either way it must be dropped, not drawn.
    with contextlib.suppress(PlaywrightError):
        held[0].continue_()
    expect(page.locator("body")).to_have_attribute("data-stale-dropped", "1")
    expect(page.locator("h1")).to_have_text("Consumer groups")
    expect(page.locator("#topic-name")).to_have_count(0)


def test_names_that_need_escaping_open_their_pages(page: Page, broker: EmbeddedBroker) -> None:
    """A group id and a subject with "/", "?", "#", "%", a space and non-ASCII: links from the
    lists open their own pages, and the page's actions reach the right routes."""
    name = "team/a b?c#d%25e-é"
    topic = "console-awkward"
    with admin_client(broker) as api:
        assert api.post("/topics", json={"name": topic}).status_code == 201
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": name})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()
    with httpx.Client(base_url=broker.http_url, timeout=TIMEOUT_S) as registry:
        path = f"/subjects/{quote(name, safe='')}/versions"
        assert registry.post(path, json={"schema": AWKWARD_SCHEMA}).status_code == 200

    _open(page, "/groups")
    page.locator("#groups a", has_text=name).click()
    expect(page.locator("h1")).to_have_text(f"Group {name}")
    expect(page.locator("#offsets")).to_contain_text(topic)
    page.select_option("#reset-topic", topic)
    page.click("#reset-dry-run")
    expect(page.locator("#reset-preview")).to_contain_text("Dry run")

    _open(page, "/groups/100%")  # a malformed escape typed by hand: asked for as written
    expect(page.locator(".error")).to_contain_text("100%")

    _open(page, "/schemas")
    page.locator("#subjects a", has_text=name).click()
    expect(page.locator("h2", has_text="Subject")).to_have_text(f"Subject {name}")
    expect(page.locator("#schema-text")).to_contain_text('"Awkward"')


def test_the_console_process_against_apache_kafka(
    browser: Browser, kafka_peer: KafkaPeer, shots: Path
) -> None:
    """``shoal console`` (a Kafka client) in front of Apache Kafka 4.4: the same pages create a
    topic, produce, and browse with a filter."""
    with console_server(kafka_peer.bootstrap_servers) as url:
        context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            _open(page, "/")
            expect(page.locator("#no-rates")).to_be_visible()  # broker metrics: not via Kafka
            _open(page, "/topics")
            page.fill("#new-topic-name", "console-browser-on-kafka")
            page.click("#create-topic button[type=submit]")
            expect(page.locator("#topic-name, .error").first).to_be_visible()
            assert page.locator(".error").count() == 0, page.locator(".error").inner_text()
            expect(page.locator("#topic-name")).to_have_text("console-browser-on-kafka")
            _open(page, "/produce/console-browser-on-kafka")
            page.fill("#produce-key", "kafka-key")
            page.fill("#produce-value", XSS_IMG)
            page.fill("#produce-headers", "origin=kafka")
            page.click("#produce button[type=submit]")
            expect(page.locator("#produce-status")).to_contain_text("at offset 0")
            _open(page, "/messages/console-browser-on-kafka?header=kafka")
            expect(page.locator("#messages td.value")).to_have_text([XSS_IMG])
            assert page.evaluate("window.__pwned") is None
            page.screenshot(path=shots / "console-on-kafka.png", full_page=True)
        finally:
            context.close()
        assert errors == [], f"the console's script failed: {errors}"


def test_the_group_page_shows_its_group_client_dying_and_recovers(
    browser: Browser, broker: EmbeddedBroker
) -> None:
    """``shoal console``'s consumer-group client aborts (librdkafka issue 4605, SIGABRT as
    librdkafka sends it): the open group page's next refresh shows one outage box naming the
    request and why; the one after shows the group again and the box is gone."""
    topic, group = "console-worker-abort", "console-worker-abort-group"
    with admin_client(broker) as api:
        assert api.post("/topics", json={"name": topic}).status_code == 201
    _produce(broker, topic, [{"value": b"v", "partition": 0}] * 3)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    finally:
        consumer.close()
    backend = Backend({"bootstrap.servers": broker.bootstrap_servers})
    with console_server(broker.bootstrap_servers, backend=backend) as url:
        context = browser.new_context(base_url=url)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.clock.install()  # the group page's re-read timer runs when the test says
            _open(page, f"/groups/{group}")
            expect(page.locator("#offsets td.lag")).to_have_text(["2"])
            worker = backend.admin.groups.worker
            pid = worker.pid
            assert pid is not None
            os.kill(pid, signal.SIGABRT)
            eventually(lambda: not worker.alive(), "the group client's process to die")
            page.clock.run_for(POLL_MS)
            outage = page.locator("#outage")
            expect(outage).to_contain_text(f"GET /api/v1/groups/{group}: ")
            expect(outage).to_contain_text("process ended (exit code -6)")
            expect(outage).to_contain_text("(kafka_client_unavailable)")
            expect(outage).to_contain_text("1 failed refresh)")
            _produce(broker, topic, [{"value": b"late", "partition": 0}])
            page.clock.run_for(POLL_MS)  # a new worker answers
            expect(page.locator("#offsets td.lag")).to_have_text(["3"])
            expect(outage).to_have_count(0)
        finally:
            context.close()
        assert errors == []
