"""The schema registry's parsers: Avro and JSON Schema text, Protobuf descriptors.

Property: a schema is parsed, or refused with :class:`SchemaParseError` (the registry's 42201)
or RecursionError (which the service turns into 42201 too: "nests too deeply"); a parsed schema
then answers every question the registry asks of it (identity, canonical and normal form,
rendering, a compatibility check against itself and against a small schema of its type)
without any other exception.

The first byte picks the format. Avro and JSON Schema get the rest as UTF-8 text (invalid
sequences replaced, as a JSON body could not carry them). Protobuf gets it base64-encoded, the
form confluent-kafka registers, so the fuzzer mutates the binary FileDescriptorProto; ``.proto``
text is compiled by a protoc subprocess per schema, far too slow to fuzz here, and is left to
the registry's own tests.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Final

from google.protobuf import descriptor_pb2

from shoal.registry.formats import SchemaParseError, identity, parse_schema
from shoal.registry.formats.base import ParsedSchema
from shoal.registry.formats.protobuf import ProtobufSchema, decode_descriptor

FORMATS: Final = ("AVRO", "JSON", "PROTOBUF")
RENDER_FORMATS: Final = (None, "serialized", "resolved", "canonical")


def _small_descriptor() -> str:
    file = descriptor_pb2.FileDescriptorProto(name="small.proto", package="fuzz", syntax="proto3")
    message = file.message_type.add(name="Small")
    message.field.add(name="id", number=1, type=3, label=1)
    return base64.b64encode(file.SerializeToString()).decode()


SMALL: Final = {
    "AVRO": '{"type": "record", "name": "Small", "fields": [{"name": "id", "type": "long"}]}',
    "JSON": '{"type": "object", "properties": {"id": {"type": "integer"}}}',
    "PROTOBUF": _small_descriptor(),
}


def one_input(data: bytes) -> None:
    """``data[0]`` picks the format; the rest is the schema."""
    if not data:
        return
    schema_type = FORMATS[data[0] % len(FORMATS)]
    raw = data[1:]
    if schema_type == "PROTOBUF":
        text = base64.b64encode(raw).decode()
        if decode_descriptor(text) is None:
            return  # not a descriptor: the registry would run protoc on it (see above)
    else:
        text = raw.decode("utf-8", errors="replace")
    identity(schema_type, text)
    try:
        parsed = parse_schema(schema_type, text)
    except (SchemaParseError, RecursionError):
        return
    _questions(schema_type, parsed)


@cache
def _small(schema_type: str) -> ParsedSchema:
    return parse_schema(schema_type, SMALL[schema_type])


def _questions(schema_type: str, parsed: ParsedSchema) -> None:
    small = _small(schema_type)
    assert isinstance(parsed.canonical, str)
    parsed.normal_form  # noqa: B018  (a property that computes: it must not raise)
    for fmt in RENDER_FORMATS:
        parsed.render(fmt)
    parsed.incompatibilities(parsed)
    parsed.incompatibilities(small)
    small.incompatibilities(parsed)
    if isinstance(parsed, ProtobufSchema):
        parse_schema(schema_type, parsed.canonical)
