"""Schema-registry codecs of shoal.app against a real shoal broker and its built-in registry,
and against confluent-kafka's own serializers (interop both ways)."""

from __future__ import annotations

import asyncio
import enum
import importlib
import json
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from shoal import App, Message
from shoal.app.resilience import dlq
from shoal.app.serdes.avro_types import avro_schema
from shoal.app.serdes.payload import SerdeError
from shoal.app.serdes.protobuf import decode_indexes, encode_indexes, message_indexes
from shoal.app.serdes.registry import frame, unframe
from shoal.app.serdes.schemas import (
    AvroCodec,
    IncompatibleSchemaError,
    JsonSchemaCodec,
    ProtobufCodec,
    RegistryUnavailableError,
    SchemaRegistryError,
    WireFormatError,
)
from shoal.embedded import EmbeddedBroker
from tests.app.transports.transport_suite import header, read_until, run, topic_name, wait_until

# authlib (imported by confluent-kafka's registry client) warns at import time; importing it
# once here keeps warnings-as-errors from failing collection over a third party's notice.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
    from confluent_kafka.schema_registry.protobuf import (
        ProtobufDeserializer,
        ProtobufSerializer,
    )
    from confluent_kafka.serialization import MessageField, SerializationContext


class Status(enum.Enum):
    NEW = "new"
    PAID = "paid"


@dataclass
class Address:
    city: str
    zip_code: str | None = None


@dataclass
class Order:
    id: int
    item: str
    price: float
    status: Status
    ship_to: Address
    tags: list[str] = field(default_factory=list)
    extras: dict[str, int] = field(default_factory=dict)
    note: str | None = None
    gift: bool = False
    blob: bytes = b""


def an_order(i: int = 1) -> Order:
    return Order(
        id=i,
        item=f"tea-{i}",
        price=2.5 * i,
        status=Status.PAID,
        ship_to=Address("Lyon", "69001"),
        tags=["a", "b"],
        extras={"cups": i},
        note=None,
        gift=True,
        blob=b"\x00\xff",
    )


ORDER_AS_DICT = {
    "id": 1,
    "item": "tea-1",
    "price": 2.5,
    "status": "PAID",
    "ship_to": {"city": "Lyon", "zip_code": "69001"},
    "tags": ["a", "b"],
    "extras": {"cups": 1},
    "note": None,
    "gift": True,
    "blob": b"\x00\xff",
}

ORDER_V1 = {
    "type": "record",
    "name": "Purchase",
    "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}],
}
ORDER_V2 = {
    "type": "record",
    "name": "Purchase",
    "fields": [*ORDER_V1["fields"], {"name": "qty", "type": "int", "default": 1}],
}


@dataclass
class PurchaseV2:
    id: int
    item: str
    qty: int = 1


class Sku(BaseModel):
    sku: str
    qty: int


SKU_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
    "required": ["sku", "qty"],
}


@pytest.fixture
def broker(shoal_broker: EmbeddedBroker) -> EmbeddedBroker:
    return shoal_broker


@pytest.fixture
def url(broker: EmbeddedBroker) -> str:
    return broker.http_url


@pytest.fixture
def confluent(url: str) -> Iterator[SchemaRegistryClient]:
    client = SchemaRegistryClient({"url": url})
    yield client
    client.close()


def value_context(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def latest(url: str, subject: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/subjects/{subject}/versions/latest")
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- wire format, without a registry ---------------------------------------------------------


def test_avro_schema_derived_from_a_dataclass() -> None:
    schema = avro_schema(Order)
    fields = {f["name"]: f for f in schema["fields"]}
    assert schema["name"] == "Order"
    assert fields["id"]["type"] == "long"
    assert fields["price"]["type"] == "double"
    assert fields["status"]["type"] == {
        "type": "enum",
        "name": "Status",
        "symbols": ["NEW", "PAID"],
    }
    assert fields["ship_to"]["type"]["fields"][1] == {
        "name": "zip_code",
        "type": ["null", "string"],
        "default": None,
    }
    assert fields["tags"] == {
        "name": "tags",
        "type": {"type": "array", "items": "string"},
        "default": [],
    }
    assert fields["extras"]["type"] == {"type": "map", "values": "long"}
    assert fields["note"] == {"name": "note", "type": ["null", "string"], "default": None}
    assert fields["gift"] == {"name": "gift", "type": "boolean", "default": False}
    assert fields["blob"]["type"] == "bytes"


def test_records_not_in_confluent_wire_format_are_refused() -> None:
    with pytest.raises(WireFormatError, match="magic byte 0x01"):
        unframe(b"\x01\x00\x00\x00\x07payload")
    with pytest.raises(WireFormatError, match="5-byte header"):
        unframe(b"\x00\x00")
    schema_id, payload = unframe(frame(7, b"abc"))
    assert (schema_id, bytes(payload)) == (7, b"abc")


@given(st.lists(st.integers(min_value=0, max_value=2**31), min_size=1, max_size=64))
def test_message_indexes_round_trip(indexes: list[int]) -> None:
    data = encode_indexes(indexes) + b"rest"
    decoded, used = decode_indexes(memoryview(data))
    assert decoded == indexes
    assert data[used:] == b"rest"


def test_message_indexes_are_bounded() -> None:
    with pytest.raises(WireFormatError, match=r"expected 1\.\.64"):
        decode_indexes(memoryview(encode_indexes(list(range(65)))))
    with pytest.raises(WireFormatError, match="ends inside"):
        decode_indexes(memoryview(b"\x04\x02"))


# -- Avro ------------------------------------------------------------------------------------


@pytest.mark.integration
def test_app_round_trips_avro_and_registers_the_derived_schema(
    url: str, broker: EmbeddedBroker
) -> None:
    topic = topic_name("orders")
    got: list[Order] = []

    async def scenario() -> None:
        app = App(f"kafka://{broker.bootstrap_servers}")

        @app.subscriber(topic, group="billing", codec=AvroCodec(url, record_type=Order))
        async def on_order(order: Order) -> None:
            got.append(order)

        publish_codec = AvroCodec(url, record_type=Order)
        async with app:
            await app.publish(topic, an_order(1), codec=publish_codec)
            await app.publish(topic, an_order(2), codec=publish_codec)
            await wait_until(lambda: len(got) == 2, "two orders")
            raw = await read_until(app, topic, 2)
        assert {r.value[0] for r in raw} == {0}  # Confluent's magic byte

    run(scenario())
    assert got == [an_order(1), an_order(2)]
    registered = latest(url, f"{topic}-value")
    assert registered["version"] == 1
    assert json.loads(registered["schema"]) == avro_schema(Order)


@pytest.mark.integration
def test_avro_interoperates_with_confluent_serializers(
    url: str, confluent: SchemaRegistryClient
) -> None:
    topic = topic_name("orders")
    ours = AvroCodec(url, record_type=Order)
    serializer = AvroSerializer(confluent, json.dumps(avro_schema(Order)))
    deserializer = AvroDeserializer(confluent)

    async def scenario() -> None:
        theirs = serializer(ORDER_AS_DICT, value_context(topic))
        assert await ours.decode(topic, theirs) == an_order(1)
        mine = await ours.encode(topic, an_order(1))
        assert deserializer(mine, value_context(topic)) == ORDER_AS_DICT
        # The same schema, so the same id, whoever registered it.
        assert mine[:5] == theirs[:5]

    run(scenario())


@pytest.mark.integration
def test_avro_reader_resolves_an_older_writer_schema(url: str) -> None:
    topic = topic_name("purchases")
    v1 = AvroCodec(url, ORDER_V1)
    v2 = AvroCodec(url, json.dumps(ORDER_V2), record_type=PurchaseV2)

    async def scenario() -> None:
        old = await v1.encode(topic, {"id": 7, "item": "tea"})
        new = await v2.encode(topic, PurchaseV2(8, "cake", qty=3))
        assert old[1:5] != new[1:5]
        assert await v2.decode(topic, old) == PurchaseV2(7, "tea", qty=1)
        assert await v2.decode(topic, new) == PurchaseV2(8, "cake", qty=3)
        # A reader without a schema of its own gets each record as written.
        assert await AvroCodec(url).decode(topic, new) == {"id": 8, "item": "cake", "qty": 3}

    run(scenario())
    assert latest(url, f"{topic}-value")["version"] == 2


@pytest.mark.integration
def test_records_encoded_at_once_register_their_schema_once(url: str) -> None:
    """A producer sending many records before the registry first answers asks it once."""
    codec = AvroCodec(url, ORDER_V1)
    calls: list[str] = []
    register = codec.registry.register

    async def counted(subject: str, *args: Any, **kwargs: Any) -> int:
        calls.append(subject)
        return await register(subject, *args, **kwargs)

    codec.registry.register = counted  # type: ignore[method-assign]
    topic = topic_name("herd")

    async def scenario() -> None:
        sent = [{"id": i, "item": "x"} for i in range(50)]
        raws = await asyncio.gather(*(codec.encode(topic, value) for value in sent))
        assert [await codec.decode(topic, raw) for raw in raws] == sent

    run(scenario())
    assert calls == [f"{topic}-value"]


@pytest.mark.integration
def test_schema_from_an_avsc_file(url: str, tmp_path: Path) -> None:
    avsc = tmp_path / "purchase.avsc"
    avsc.write_text(json.dumps(ORDER_V1))
    codec, by_name = AvroCodec(url, avsc), AvroCodec(url, str(avsc))
    topic = topic_name("avsc")

    async def scenario() -> None:
        raw = await codec.encode(topic, {"id": 1, "item": "x"})
        assert await by_name.decode(topic, raw) == {"id": 1, "item": "x"}
        assert (await by_name.encode(topic, {"id": 1, "item": "x"})) == raw

    run(scenario())


@pytest.mark.integration
def test_an_incompatible_schema_is_refused_at_registration(url: str) -> None:
    topic = topic_name("purchases")
    subject = f"{topic}-value"
    required_qty = {
        "type": "record",
        "name": "Purchase",
        "fields": [*ORDER_V1["fields"], {"name": "qty", "type": "int"}],
    }

    async def scenario() -> None:
        await AvroCodec(url, ORDER_V1).encode(topic, {"id": 1, "item": "x"})
        async with httpx.AsyncClient() as http:
            body = {"compatibility": "BACKWARD"}
            response = await http.put(f"{url}/config/{subject}", json=body)
        assert response.status_code == 200, response.text
        with pytest.raises(IncompatibleSchemaError, match="409") as refused:
            await AvroCodec(url, required_qty).encode(topic, {"id": 1, "item": "x", "qty": 2})
        assert refused.value.error_code == 409

    run(scenario())
    assert latest(url, subject)["version"] == 1


@pytest.mark.integration
def test_use_latest_encodes_with_the_latest_version_without_registering(url: str) -> None:
    topic = topic_name("purchases")
    subject = f"{topic}-value"

    async def scenario() -> None:
        await AvroCodec(url, ORDER_V1).encode(topic, {"id": 1, "item": "x"})
        v2 = AvroCodec(url, ORDER_V2, auto_register=False, use_latest=True)
        raw = await v2.encode(topic, {"id": 2, "item": "y", "qty": 5})
        written_ids.append(int.from_bytes(raw[1:5], "big"))
        # Written with v1 (qty dropped), read back as v2 (qty from its default).
        assert await v2.decode(topic, raw) == {"id": 2, "item": "y", "qty": 1}

    written_ids: list[int] = []
    run(scenario())
    assert written_ids == [latest(url, subject)["id"]]
    assert httpx.get(f"{url}/subjects/{subject}/versions").json() == [1]


@pytest.mark.integration
def test_without_auto_register_an_unregistered_schema_is_an_error(url: str) -> None:
    codec = AvroCodec(url, ORDER_V1, auto_register=False)

    async def scenario() -> None:
        with pytest.raises(SchemaRegistryError, match="auto_register is off"):
            await codec.encode(topic_name("nowhere"), {"id": 1, "item": "x"})

    run(scenario())


@pytest.mark.integration
def test_a_value_that_does_not_fit_the_avro_schema_names_the_field(url: str) -> None:
    codec = AvroCodec(url, record_type=PurchaseV2)

    async def scenario() -> None:
        with pytest.raises(ValueError, match="qty"):
            await codec.encode(topic_name("p"), {"id": 1, "item": "x", "qty": "many"})

    run(scenario())


@pytest.mark.integration
def test_undecodable_avro_records_land_in_the_dlq(url: str, broker: EmbeddedBroker) -> None:
    topic = topic_name("orders")
    handled: list[object] = []

    async def scenario() -> None:
        codec = AvroCodec(url, record_type=Order)
        app = App(f"kafka://{broker.bootstrap_servers}")

        @app.subscriber(topic, group="g", codec=codec)
        async def on_order(order: Order) -> None:
            handled.append(order)

        good = await codec.encode(topic, an_order(1))
        truncated = good[:8]  # a real id, a payload cut short
        async with app:
            await app.publish(topic, b"\x01" + good[1:])  # bad magic byte
            await app.publish(topic, frame(999_999, good[5:]))  # unknown schema id
            await app.publish(topic, truncated)  # payload cut short
            await app.publish(topic, good)
            dead = await read_until(app, dlq.dlq_topic(topic), 3)
            await wait_until(lambda: len(handled) == 1, "the good record")
        messages = [header(d, dlq.EXCEPTION_MESSAGE) for d in dead]
        # The codec's own error types reach the DLQ; both are SerdeErrors (no retry).
        assert [header(d, dlq.EXCEPTION_TYPE) for d in dead] == [
            "shoal.app.serdes.registry.WireFormatError",
            "shoal.app.serdes.payload.SerdeError",
            "shoal.app.serdes.payload.SerdeError",
        ]
        assert "magic byte 0x01" in messages[0]
        assert "schema id 999999 is unknown" in messages[1]
        assert "does not match Avro schema id" in messages[2]
        assert [d.value for d in dead] == [b"\x01" + good[1:], frame(999_999, good[5:]), truncated]

    run(scenario())
    assert handled == [an_order(1)]


# -- JSON Schema -----------------------------------------------------------------------------


@pytest.mark.integration
def test_json_schema_interoperates_with_confluent_serializers(
    url: str, confluent: SchemaRegistryClient
) -> None:
    topic = topic_name("skus")
    ours = JsonSchemaCodec(url, SKU_SCHEMA)
    as_model = JsonSchemaCodec(url, Sku)
    serializer = JSONSerializer(json.dumps(SKU_SCHEMA), confluent)
    deserializer = JSONDeserializer(json.dumps(SKU_SCHEMA))

    async def scenario() -> None:
        theirs = serializer({"sku": "tea", "qty": 2}, value_context(topic))
        assert await ours.decode(topic, theirs) == {"sku": "tea", "qty": 2}
        assert await as_model.decode(topic, theirs) == Sku(sku="tea", qty=2)
        mine = await ours.encode(topic, {"sku": "cake", "qty": 3})
        assert mine[1:5] == theirs[1:5]
        assert deserializer(mine, value_context(topic)) == {"sku": "cake", "qty": 3}

    run(scenario())


@pytest.mark.integration
def test_json_schema_validates_on_encode_and_sends_invalid_records_to_the_dlq(
    url: str, broker: EmbeddedBroker
) -> None:
    topic = topic_name("skus")
    handled: list[Sku] = []

    async def scenario() -> None:
        codec = JsonSchemaCodec(url, SKU_SCHEMA)
        with pytest.raises(ValueError, match="field 'qty'"):
            await codec.encode(topic, {"sku": "tea", "qty": 0})
        good = await codec.encode(topic, {"sku": "tea", "qty": 1})
        app = App(f"kafka://{broker.bootstrap_servers}")

        @app.subscriber(topic, group="g", codec=JsonSchemaCodec(url, Sku))
        async def on_sku(sku: Sku) -> None:
            handled.append(sku)

        async with app:
            await app.publish(topic, good[:5] + b'{"sku": 5, "qty": 1}')
            await app.publish(topic, good)
            (dead,) = await read_until(app, dlq.dlq_topic(topic), 1)
            await wait_until(lambda: len(handled) == 1, "the valid record")
        assert "field 'sku'" in header(dead, dlq.EXCEPTION_MESSAGE)

    run(scenario())
    assert handled == [Sku(sku="tea", qty=1)]


@pytest.mark.integration
def test_json_schema_of_a_pydantic_model_is_registered(url: str) -> None:
    topic = topic_name("skus")
    codec = JsonSchemaCodec(url, Sku)

    async def scenario() -> None:
        raw = await codec.encode(topic, Sku(sku="tea", qty=1))
        assert await codec.decode(topic, raw) == Sku(sku="tea", qty=1)
        with pytest.raises(ValueError, match="field 'qty'"):
            await codec.encode(topic, {"sku": "tea", "qty": "one"})

    run(scenario())
    registered = latest(url, f"{topic}-value")
    assert registered["schemaType"] == "JSON"
    assert json.loads(registered["schema"]) == Sku.model_json_schema()


# -- Protobuf --------------------------------------------------------------------------------

ADDRESS_PROTO = """syntax = "proto3";
package shoalapp.shop;
message Address { string city = 1; }
"""
ORDER_PROTO = """syntax = "proto3";
package shoalapp.shop;
import "shoalapp_address.proto";
message Receipt { string text = 1; }
message Parcel {
  int64 id = 1;
  Address ship_to = 2;
  repeated string tags = 3;
  message Label { string code = 1; }
  Label label = 4;
}
"""


@pytest.fixture
def parcel_pb2(tmp_path: Path) -> Any:
    """Compile the .proto files with grpcio-tools' protoc and import the generated module, as an
    application would its generated classes."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    src = tmp_path / "proto"
    src.mkdir()
    (src / "shoalapp_address.proto").write_text(ADDRESS_PROTO)
    (src / "shoalapp_parcel.proto").write_text(ORDER_PROTO)
    argv = ["protoc", f"-I{src}", f"--python_out={src}"]
    assert protoc.main([*argv, "shoalapp_address.proto", "shoalapp_parcel.proto"]) == 0
    sys.path.insert(0, str(src))
    try:
        for name in ("shoalapp_parcel_pb2", "shoalapp_address_pb2"):
            sys.modules.pop(name, None)
        return importlib.import_module("shoalapp_parcel_pb2")
    finally:
        sys.path.remove(str(src))


def test_message_indexes_locate_nested_messages(parcel_pb2: Any) -> None:
    assert message_indexes(parcel_pb2.Receipt.DESCRIPTOR) == [0]
    assert message_indexes(parcel_pb2.Parcel.DESCRIPTOR) == [1]
    assert message_indexes(parcel_pb2.Parcel.Label.DESCRIPTOR) == [1, 0]


@pytest.mark.integration
def test_protobuf_round_trips_through_the_app_and_registers_its_import(
    url: str, broker: EmbeddedBroker, parcel_pb2: Any
) -> None:
    topic = topic_name("parcels")
    got: list[Any] = []
    parcel = parcel_pb2.Parcel(id=3, ship_to={"city": "Nantes"}, tags=["x"], label={"code": "L"})

    async def scenario() -> None:
        app = App(f"kafka://{broker.bootstrap_servers}")

        @app.subscriber(topic, group="g", codec=ProtobufCodec(url, parcel_pb2.Parcel))
        async def on_parcel(p: Any, msg: Message) -> None:
            got.append(p)

        async with app:
            codec = ProtobufCodec(url, parcel_pb2.Parcel)
            await app.publish(topic, parcel, codec=codec)
            await app.publish(topic, {"id": 4}, codec=codec)
            await wait_until(lambda: len(got) == 2, "two parcels")
            with pytest.raises(ValueError, match=r"shoalapp\.shop\.Parcel"):
                await codec.encode(topic, {"id": "not a number"})

    run(scenario())
    assert got == [parcel, parcel_pb2.Parcel(id=4)]
    registered = latest(url, f"{topic}-value")
    assert registered["schemaType"] == "PROTOBUF"
    assert registered["references"] == [
        {"name": "shoalapp_address.proto", "subject": "shoalapp_address.proto", "version": 1}
    ]


@pytest.mark.integration
def test_protobuf_interoperates_with_confluent_serializers(
    url: str, confluent: SchemaRegistryClient, parcel_pb2: Any
) -> None:
    topic = topic_name("parcels")
    conf = {"use.deprecated.format": False}
    label_topic = topic_name("labels")
    parcel = parcel_pb2.Parcel(id=9, ship_to={"city": "Brest"}, tags=["a", "b"])
    label = parcel_pb2.Parcel.Label(code="X1")

    async def scenario() -> None:
        for message, where in ((parcel, topic), (label, label_topic)):
            kind = type(message)
            ours = ProtobufCodec(url, kind)
            theirs = ProtobufSerializer(kind, confluent, conf)(message, value_context(where))
            assert await ours.decode(where, theirs) == message
            mine = await ours.encode(where, message)
            assert mine == theirs  # same id, same message indexes, same bytes
            deserializer = ProtobufDeserializer(kind, conf, confluent)
            assert deserializer(mine, value_context(where)) == message

    run(scenario())


@pytest.mark.integration
def test_a_protobuf_record_of_another_format_is_refused(url: str, parcel_pb2: Any) -> None:
    topic = topic_name("parcels")

    async def scenario() -> None:
        avro = await AvroCodec(url, ORDER_V1).encode(topic, {"id": 1, "item": "x"})
        with pytest.raises(SerdeError, match="AVRO schema, not Protobuf"):
            await ProtobufCodec(url, parcel_pb2.Parcel).decode(topic, avro)

    run(scenario())


def test_registry_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http://"):
        AvroCodec("localhost:8081", ORDER_V1)


@pytest.mark.integration
def test_the_steady_state_needs_no_registry(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    """Once a codec has written and read a schema it answers from its caches: records keep
    flowing while the registry is down; only a schema id not seen yet needs it."""
    registry = shoal_broker_factory()
    codec = AvroCodec(registry.http_url, record_type=PurchaseV2)
    topic = topic_name("cached")

    async def warm() -> bytes:
        raw = await codec.encode(topic, PurchaseV2(1, "tea"))
        assert await codec.decode(topic, raw) == PurchaseV2(1, "tea")
        return raw

    async def registry_down(raw: bytes) -> None:
        again = await codec.encode(topic, PurchaseV2(2, "cake"))
        assert again[:5] == raw[:5]
        assert await codec.decode(topic, again) == PurchaseV2(2, "cake")
        unseen = frame(int.from_bytes(raw[1:5], "big") + 1, raw[5:])
        with pytest.raises(RegistryUnavailableError, match="cannot reach"):
            await codec.decode(topic, unseen)

    raw: list[bytes] = []

    async def first() -> None:
        raw.append(await warm())

    run(first())
    registry.stop()
    run(registry_down(raw[0]))


class Shipment(BaseModel):
    id: int
    status: Status = Status.NEW
    sent_at: datetime
    carrier: str | None = None
    weights: list[float] = []


@pytest.mark.integration
def test_avro_round_trips_a_pydantic_model(url: str) -> None:
    codec = AvroCodec(url, record_type=Shipment)
    topic = topic_name("shipments")
    shipment = Shipment(id=1, sent_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), weights=[1.5])
    fields = {f["name"]: f for f in avro_schema(Shipment)["fields"]}
    assert fields["status"]["default"] == "NEW"
    assert fields["sent_at"]["type"] == {"type": "long", "logicalType": "timestamp-micros"}

    async def scenario() -> None:
        assert await codec.decode(topic, await codec.encode(topic, shipment)) == shipment

    run(scenario())
