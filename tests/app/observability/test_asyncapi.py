"""The AsyncAPI document: structure a tool can load, and payload schemas that accept what shoal
actually writes for each payload type.

No AsyncAPI JSON Schema is available offline, so the document is checked structurally: the
required keys, every ``$ref`` resolves, every operation names an existing channel and one of
that channel's messages, and every payload schema is a valid JSON Schema (2020-12).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import msgspec
import pydantic
import pytest

from shoal.app import App, Retry
from shoal.app.observability.asyncapi import SchemaBuilder, document, servers
from shoal.app.serdes.payload import encode


class Currency(enum.Enum):
    EUR = "EUR"
    USD = "USD"


class Line(pydantic.BaseModel):
    sku: str
    quantity: int


class Order(pydantic.BaseModel):
    """An order placed in the shop."""

    id: str
    lines: list[Line]
    note: str | None = None


@dataclass
class Money:
    amount: int
    currency: Currency


@dataclass
class Invoice:
    """What billing sends to the ledger."""

    order_id: str
    total: Money
    issued_at: dt.datetime
    tags: list[str] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)
    discount: Money | None = None
    raw: bytes = b""


@dataclass
class Category:
    name: str
    children: list[Category] = field(default_factory=list)


class Shipment(msgspec.Struct):
    order_id: str
    carrier: str


# -- an app declaring all of that --------------------------------------------------------------


async def bill(order: Order) -> Invoice:
    """Bill an order."""
    raise NotImplementedError


async def record(raw: bytes) -> None:
    pass


async def count(value) -> None:  # type: ignore[no-untyped-def]  # unannotated: any JSON
    pass


def shop(url: str = "kafka://broker-1:9092,broker-2:9092") -> App:
    app = App(url, name="billing", version="1.2.0", description="Bills orders.")
    app.subscriber(
        "orders", group="billing", retry=Retry.with_topics(1000, 60000), output="invoices"
    )(bill)
    app.subscriber(["audit.raw", "audit.v2"], group="audit", dlq=False)(record)
    app.subscriber("orders", group="analytics", dlq=False)(count)
    app.publisher("shipments", payload=Shipment, description="Shipments to carriers.")
    return app


# -- structural checks --------------------------------------------------------------------------


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def check_structure(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(doc["info"])
    json.dumps(doc)  # plain JSON data, nothing else
    for ref in refs(doc):
        resolve(doc, ref)
    id_pattern = r"^[A-Za-z0-9_\-]+$"
    for section in ("channels", "operations", "servers"):
        for key in doc.get(section, {}):
            jsonschema.validate(key, {"type": "string", "pattern": id_pattern})
    for op_id, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), op_id
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        for message in op["messages"]:
            # An operation's messages must be messages of its own channel.
            assert message["$ref"].startswith(channel_ref + "/messages/"), op_id
    for schema in doc["components"].get("schemas", {}).values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for message in doc["components"]["messages"].values():
        jsonschema.Draft202012Validator.check_schema(message["payload"])
        assert message["headers"]["type"] == "object"


def channel_by_address(doc: dict[str, Any], address: str) -> dict[str, Any]:
    (channel,) = [c for c in doc["channels"].values() if c["address"] == address]
    return channel


def only_message(doc: dict[str, Any], address: str) -> dict[str, Any]:
    (ref,) = channel_by_address(doc, address)["messages"].values()
    message: dict[str, Any] = resolve(doc, ref["$ref"])
    return message


def payload_validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    # "#/components/schemas/X" refs resolve against the whole document.
    root = {**schema, "components": doc["components"]}
    return jsonschema.Draft202012Validator(root)


# -- tests --------------------------------------------------------------------------------------


def test_document_of_an_app() -> None:
    doc = document(shop())
    check_structure(doc)
    assert doc["info"] == {"title": "billing", "version": "1.2.0", "description": "Bills orders."}
    # The password in the URL never reaches the document; each bootstrap host is a server.
    # Each bootstrap host is a server.
    assert doc["servers"] == {
        "kafka-1": {"host": "broker-1:9092", "protocol": "kafka"},
        "kafka-2": {"host": "broker-2:9092", "protocol": "kafka"},
    }

    addresses = sorted(c["address"] for c in doc["channels"].values())
    assert addresses == [
        "audit.raw",
        "audit.v2",
        "invoices",
        "orders",
        "orders.dlq",
        "orders.retry.1",
        "orders.retry.2",
        "shipments",
    ]
    # Two subscribers read "orders" with different payload types: one channel, two messages.
    orders = channel_by_address(doc, "orders")
    assert len(orders["messages"]) == 2

    ops = doc["operations"]
    bill = ops["bill"]
    assert bill["action"] == "receive"
    assert resolve(doc, bill["channel"]["$ref"])["address"] == "orders"
    assert bill["bindings"]["kafka"]["groupId"] == {"type": "string", "enum": ["billing"]}
    assert bill["description"] == "Bill an order."
    assert bill["x-shoal"]["retry"]["topicDelaysMs"] == [1000, 60000]
    assert ops["count"]["bindings"]["kafka"]["groupId"]["enum"] == ["analytics"]
    # One receive operation per topic of a multi-topic subscriber.
    assert ops["record_audit_raw"]["bindings"]["kafka"]["groupId"]["enum"] == ["audit"]
    assert resolve(doc, ops["record_audit_v2"]["channel"]["$ref"])["address"] == "audit.v2"
    sends = {
        resolve(doc, op["channel"]["$ref"])["address"]
        for op in ops.values()
        if op["action"] == "send"
    }
    assert sends == {"invoices", "orders.dlq", "shipments"}

    dlq_message = only_message(doc, "orders.dlq")
    assert "shoal.dlq.exception.type" in dlq_message["headers"]["properties"]
    assert dlq_message["contentType"] == "application/json"
    assert dlq_message["payload"] == {"$ref": "#/components/schemas/Order"}

    audit_message = only_message(doc, "audit.raw")
    assert audit_message["contentType"] == "application/octet-stream"
    assert audit_message["payload"] == {"type": "string", "format": "binary"}

    schemas = doc["components"]["schemas"]
    assert {"Order", "Line", "Invoice", "Money", "Currency", "Shipment"} <= set(schemas)
    assert schemas["Invoice"]["description"] == "What billing sends to the ledger."


def test_payload_schemas_accept_what_shoal_encodes_and_reject_other_shapes() -> None:
    doc = document(shop())
    messages = doc["components"]["messages"]

    def validator_for(type_name: str) -> jsonschema.Validator:
        return payload_validator(doc, messages[type_name]["payload"])

    order = Order(id="o1", lines=[Line(sku="a", quantity=2)])
    invoice = Invoice(
        "o1",
        Money(5, Currency.EUR),
        dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
        discount=None,
    )
    validator_for("Order").validate(json.loads(encode(order)))
    # serde encodes dataclasses with json: enums and datetimes are the caller's to convert, so
    # check the shape shoal documents against the JSON form a client would send.
    as_json = dataclasses.asdict(invoice)
    as_json["total"]["currency"] = "EUR"
    as_json["issued_at"] = invoice.issued_at.isoformat()
    as_json["raw"] = ""
    validator_for("Invoice").validate(as_json)
    validator_for("Shipment").validate(json.loads(msgspec.json.encode(Shipment("o1", "dhl"))))

    with pytest.raises(jsonschema.ValidationError):
        validator_for("Order").validate({"id": "o1"})  # lines missing
    with pytest.raises(jsonschema.ValidationError):
        validator_for("Invoice").validate({**as_json, "total": {"amount": 5, "currency": "GBP"}})


def test_dataclass_fields_to_json_schema() -> None:
    builder = SchemaBuilder()
    assert builder.schema(Invoice) == {"$ref": "#/components/schemas/Invoice"}
    invoice = builder.components["Invoice"]
    assert invoice["required"] == ["order_id", "total", "issued_at"]
    props = invoice["properties"]
    assert props["total"] == {"$ref": "#/components/schemas/Money"}
    assert props["issued_at"] == {"type": "string", "format": "date-time"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["extra"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert props["discount"] == {
        "anyOf": [{"$ref": "#/components/schemas/Money"}, {"type": "null"}]
    }
    assert props["raw"] == {"type": "string", "format": "binary"}
    assert builder.components["Currency"] == {
        "title": "Currency",
        "enum": ["EUR", "USD"],
        "type": "string",
    }
    # A second use refers to the same component instead of repeating it.
    assert builder.schema(Money) == {"$ref": "#/components/schemas/Money"}


def test_recursive_dataclass_refers_to_itself() -> None:
    builder = SchemaBuilder()
    assert builder.schema(Category) == {"$ref": "#/components/schemas/Category"}
    children = builder.components["Category"]["properties"]["children"]
    assert children == {"type": "array", "items": {"$ref": "#/components/schemas/Category"}}


def test_plain_types() -> None:
    builder = SchemaBuilder()
    assert builder.schema(Any) == {}
    assert builder.schema(str) == {"type": "string"}
    assert builder.schema(dict) == {"type": "object"}
    assert builder.schema(dict[str, Any]) == {"type": "object", "additionalProperties": {}}
    assert builder.schema(tuple[int, ...]) == {"type": "array", "items": {"type": "integer"}}
    assert builder.schema(int | str) == {"anyOf": [{"type": "integer"}, {"type": "string"}]}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory://", {}),
        ("embedded:///tmp/data", {"embedded": {"host": "localhost", "protocol": "kafka"}}),
        ("kafka://127.0.0.1:9092", {"kafka": {"host": "127.0.0.1:9092", "protocol": "kafka"}}),
        (
            "amqp://guest:guest@rabbit:5672/orders",
            {"amqp": {"host": "rabbit:5672", "protocol": "amqp", "pathname": "/orders"}},
        ),
        ("redis://cache:6379", {"redis": {"host": "cache:6379", "protocol": "redis"}}),
        ("nats://n1:4222,n2:4222", {
            "nats-1": {"host": "n1:4222", "protocol": "nats"},
            "nats-2": {"host": "n2:4222", "protocol": "nats"},
        }),
    ],
)  # fmt: skip
def test_servers_from_the_broker_url(url: str, expected: dict[str, Any]) -> None:
    got = servers(url)
    for server in got.values():
        server.pop("description", None)
    assert got == expected


def test_a_memory_app_without_anything_is_still_a_valid_document() -> None:
    doc = document(App("memory://"))
    check_structure(doc)
    assert "servers" not in doc
    assert "description" not in doc["info"]
    assert doc["channels"] == {} and doc["operations"] == {}


def test_a_stream_processor_is_documented_with_its_outputs_dlq_and_changelog() -> None:
    from shoal.app.message import Message
    from shoal.app.streams.processor import Outputs
    from shoal.app.streams.table import Table

    app = App("memory://")
    quotes = Table("latest", source="quotes", changelog="quotes.latest")

    @app.processor("quotes", group="quotes", stores=[quotes], outputs=["alerts"])
    async def on_quote(msg: Message, out: Outputs) -> None:
        """Keep the latest quote per symbol; alert on wide spreads."""

    doc = document(app)
    check_structure(doc)
    addresses = sorted(c["address"] for c in doc["channels"].values())
    assert addresses == ["alerts", "quotes", "quotes.dlq", "quotes.latest"]
    (receive,) = [op for op in doc["operations"].values() if op["action"] == "receive"]
    assert receive["bindings"]["kafka"]["groupId"]["enum"] == ["quotes"]
    assert receive["description"] == "Keep the latest quote per symbol; alert on wide spreads."
    assert receive["x-shoal"]["changelogs"] == ["quotes.latest"]
    assert receive["x-shoal"]["deadLetterTopic"] == "quotes.dlq"
    sends = {
        resolve(doc, op["channel"]["$ref"])["address"]
        for op in doc["operations"].values()
        if op["action"] == "send"
    }
    assert sends == {"alerts", "quotes.dlq"}
