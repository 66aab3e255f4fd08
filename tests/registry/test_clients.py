"""confluent-kafka's SchemaRegistryClient and serializers against shoal's built-in registry,
records round-tripping through the broker."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from shoal.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "shop",
    "fields": [{"name": "city", "type": "string"}],
}
ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "ship_to", "type": "shop.Address"},
    ],
}


def _round_trip(broker: EmbeddedBroker, topic: str, values: list[bytes]) -> list[bytes]:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"g-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    from confluent_kafka import TopicPartition

    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    for _ in range(200):
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            got.append(message.value())
        if len(got) == len(values):
            break
    consumer.close()
    return got


@pytest.fixture
def clients() -> Any:
    """Makes SchemaRegistryClients and closes their HTTP connections at teardown."""
    made: list[SchemaRegistryClient] = []

    def make(url: str) -> SchemaRegistryClient:
        made.append(SchemaRegistryClient({"url": url}))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    with EmbeddedBroker(str(tmp_path / "data")) as running:
        yield running


def test_avro_with_reference_round_trips(broker: EmbeddedBroker, clients: Any) -> None:
    import json

    registry = clients(broker.http_url)
    address_id = registry.register_schema("address", Schema(json.dumps(ADDRESS), "AVRO"))
    order = Schema(json.dumps(ORDER), "AVRO", [SchemaReference("shop.Address", "address", 1)])
    serializer = AvroSerializer(registry, order, conf={"auto.register.schemas": True})
    context = SerializationContext("orders", MessageField.VALUE)
    records = [{"id": i, "ship_to": {"city": f"c{i}"}} for i in range(3)]
    payloads = [serializer(r, context) for r in records]
    assert all(p[0] == 0 for p in payloads)  # Confluent's magic byte
    order_id = int.from_bytes(payloads[0][1:5], "big")
    assert order_id != address_id

    fresh = clients(broker.http_url)  # no cache: asks the registry
    deserializer = AvroDeserializer(fresh)
    got = [deserializer(v, context) for v in _round_trip(broker, "orders", payloads)]
    assert got == records
    assert fresh.get_latest_version("orders-value").version == 1
    assert fresh.get_version("address", 1).schema_id == address_id
    refs = httpx.get(f"{broker.http_url}/subjects/address/versions/1/referencedby").json()
    assert refs == [order_id]


def test_json_schema_round_trips_and_enforces_compatibility(
    broker: EmbeddedBroker, clients: Any
) -> None:
    import json

    registry = clients(broker.http_url)
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
        "required": ["sku"],
        "additionalProperties": False,
    }
    serializer = JSONSerializer(json.dumps(schema), registry)
    context = SerializationContext("stock", MessageField.VALUE)
    records = [{"sku": "a", "qty": 1}, {"sku": "b"}]
    payloads = [serializer(r, context) for r in records]
    deserializer = JSONDeserializer(None, schema_registry_client=clients(broker.http_url))
    got = [deserializer(v, context) for v in _round_trip(broker, "stock", payloads)]
    assert got == records

    narrowed = {**schema, "required": ["sku", "qty"]}
    with pytest.raises(SchemaRegistryError) as excinfo:
        registry.register_schema("stock-value", Schema(json.dumps(narrowed), "JSON"))
    assert excinfo.value.error_code == 409
    assert registry.get_versions("stock-value") == [1]


def test_state_survives_restart(tmp_path: Path, clients: Any) -> None:
    import json

    data = str(tmp_path / "data")
    with EmbeddedBroker(data) as broker:
        registry = clients(broker.http_url)
        first = registry.register_schema("a", Schema(json.dumps(ADDRESS), "AVRO"))
        wider = {
            **ADDRESS,
            "fields": [
                *ADDRESS["fields"],
                {"name": "zip", "type": ["null", "string"], "default": None},
            ],
        }
        second = registry.register_schema("a", Schema(json.dumps(wider), "AVRO"))
        registry.register_schema("b", Schema(json.dumps(ADDRESS), "AVRO"))
        registry.set_compatibility("a", "FULL")
        registry.delete_version("b", 1)
    with EmbeddedBroker(data) as broker:
        assert httpx.get(f"{broker.http_url}/readyz").status_code == 200
        registry = clients(broker.http_url)
        assert registry.get_versions("a") == [1, 2]
        assert registry.get_version("a", 2).schema_id == second
        assert registry.get_compatibility("a") == "FULL"
        assert registry.get_subjects() == ["a"]
        deleted = httpx.get(f"{broker.http_url}/subjects", params={"deleted": "true"}).json()
        assert deleted == ["a", "b"]
        # Ids stay stable and are not reused after the restart.
        third = registry.register_schema(
            "c",
            Schema(
                json.dumps(ORDER | {"name": "Other", "fields": [{"name": "x", "type": "int"}]}),
                "AVRO",
            ),
        )
        assert third not in (first, second)
        assert registry.get_schema(first).schema_str == json.dumps(ADDRESS)


ADDRESS_PROTO = """syntax = "proto3";
package shoaltest.shop;
message Address { string city = 1; }
"""
ORDER_PROTO = """syntax = "proto3";
package shoaltest.shop;
import "shoaltest/shop/address.proto";
import "google/protobuf/timestamp.proto";
message Order {
  int64 id = 1;
  Address ship_to = 2;
  repeated string tags = 3;
  google.protobuf.Timestamp placed_at = 4;
}
"""
# confluent-kafka's serializer registers each import under its path: a subject with "/" in
# it, which reaches the registry as %2F on every route it uses (register, lookup, versions).
ADDRESS_SUBJECT = "shoaltest/shop/address.proto"
TIMESTAMP_SUBJECT = "google/protobuf/timestamp.proto"


def _compile_protos(tmp_path: Path) -> Any:
    """Compile the two .proto files with grpcio-tools' protoc and import the generated module,
    as an application would its generated classes."""
    import importlib
    import sys

    from grpc_tools import protoc  # type: ignore[import-untyped]

    src = tmp_path / "proto"
    (src / "shoaltest" / "shop").mkdir(parents=True)
    (src / ADDRESS_SUBJECT).write_text(ADDRESS_PROTO)
    (src / "shoaltest_order.proto").write_text(ORDER_PROTO)
    well_known = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        [
            "protoc",
            f"-I{src}",
            f"-I{well_known}",
            f"--python_out={src}",
            ADDRESS_SUBJECT,
            "shoaltest_order.proto",
        ]
    )
    assert code == 0
    sys.path.insert(0, str(src))
    try:
        for name in [m for m in sys.modules if m.startswith(("shoaltest", "shoaltest_order"))]:
            sys.modules.pop(name, None)
        return importlib.import_module("shoaltest_order_pb2")
    finally:
        sys.path.remove(str(src))


def test_protobuf_with_reference_round_trips(
    broker: EmbeddedBroker, clients: Any, tmp_path: Path
) -> None:
    from urllib.parse import quote

    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
    from google.protobuf.timestamp_pb2 import Timestamp

    order_pb2 = _compile_protos(tmp_path)
    registry = clients(broker.http_url)
    serializer = ProtobufSerializer(
        order_pb2.Order,
        registry,
        {"use.deprecated.format": False, "skip.known.types": False},
    )
    context = SerializationContext("parcels", MessageField.VALUE)
    records = [
        order_pb2.Order(
            id=i,
            ship_to={"city": f"c{i}"},
            tags=["a"] * i,
            placed_at=Timestamp(seconds=1_700_000_000 + i),
        )
        for i in range(3)
    ]
    payloads = [serializer(r, context) for r in records]
    assert all(p[0] == 0 for p in payloads)
    order_id = int.from_bytes(payloads[0][1:5], "big")

    # Each import was registered under its path, and the order references them.
    fresh = clients(broker.http_url)
    assert set(fresh.get_subjects()) == {"parcels-value", ADDRESS_SUBJECT, TIMESTAMP_SUBJECT}
    latest = fresh.get_latest_version("parcels-value")
    assert latest.schema_id == order_id
    assert sorted((r.name, r.subject, r.version) for r in latest.schema.references) == [
        (TIMESTAMP_SUBJECT, TIMESTAMP_SUBJECT, 1),
        (ADDRESS_SUBJECT, ADDRESS_SUBJECT, 1),
    ]
    address_id = fresh.get_version(ADDRESS_SUBJECT, 1).schema_id
    refs = httpx.get(
        f"{broker.http_url}/subjects/{quote(ADDRESS_SUBJECT, safe='')}/versions/1/referencedby"
    ).json()
    assert refs == [order_id]

    deserializer = ProtobufDeserializer(order_pb2.Order, {"use.deprecated.format": False}, fresh)
    got = [deserializer(v, context) for v in _round_trip(broker, "parcels", payloads)]
    assert got == records

    # The same schemas as .proto text: the same ids (Confluent normalises the two forms).
    same_address = Schema(ADDRESS_PROTO, "PROTOBUF")
    assert fresh.lookup_schema(ADDRESS_SUBJECT, same_address).schema_id == address_id
    assert registry.register_schema(ADDRESS_SUBJECT, same_address) == address_id
    same_order = Schema(
        ORDER_PROTO,
        "PROTOBUF",
        [
            SchemaReference(ADDRESS_SUBJECT, ADDRESS_SUBJECT, 1),
            SchemaReference(TIMESTAMP_SUBJECT, TIMESTAMP_SUBJECT, 1),
        ],
    )
    assert fresh.lookup_schema("parcels-value", same_order).schema_id == order_id
    assert registry.register_schema("parcels-value", same_order) == order_id
    assert fresh.get_versions("parcels-value") == [1]

    # A new serializer (no client cache) finds the registered schemas without re-registering.
    lookup_only = ProtobufSerializer(
        order_pb2.Order,
        clients(broker.http_url),
        {"use.deprecated.format": False, "auto.register.schemas": False, "skip.known.types": False},
    )
    assert lookup_only(records[1], context) == payloads[1]
    assert fresh.get_versions(ADDRESS_SUBJECT) == [1]

    # Deleting the import while the order uses it is refused, through the %2F path too.
    with pytest.raises(SchemaRegistryError) as excinfo:
        registry.delete_subject(ADDRESS_SUBJECT)
    assert excinfo.value.error_code == 42206
