"""Codecs for records whose schemas live in a Confluent-compatible schema registry (shoal's
own, on the broker's HTTP port, or any other), in Confluent's wire format, so they interoperate
with confluent-kafka's serializers and the Java clients:

    registry = "http://localhost:8081"
    app = App("kafka://localhost:9092")

    @app.subscriber("orders", group="billing", codec=AvroCodec(registry, record_type=Order))
    async def bill(order: Order) -> None: ...

    await app.publish("orders", Order(...), codec=AvroCodec(registry, record_type=Order))

A record a codec cannot decode (no magic byte 0, an id the registry does not know, a payload
that does not match its schema) raises, and the App sends it to the DLQ. A value that does not
fit the schema on encode raises ValueError naming the field. The registry is asked on cache
misses only: once per subject for writing and once per schema id for reading.
"""

from __future__ import annotations

from shoal.app.serdes.avro import AvroCodec
from shoal.app.serdes.json_schema import JsonSchemaCodec
from shoal.app.serdes.protobuf import ProtobufCodec
from shoal.app.serdes.registry import (
    IncompatibleSchemaError,
    RegistryUnavailableError,
    SchemaRegistryError,
    WireFormatError,
    topic_name_strategy,
)

__all__ = [
    "AvroCodec",
    "IncompatibleSchemaError",
    "JsonSchemaCodec",
    "ProtobufCodec",
    "RegistryUnavailableError",
    "SchemaRegistryError",
    "WireFormatError",
    "topic_name_strategy",
]
