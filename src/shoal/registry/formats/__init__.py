"""Schema formats: parse a schema (with its references) by type."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shoal.registry.formats.avro import parse_avro
from shoal.registry.formats.base import (
    ParsedSchema,
    ResolvedReference,
    SchemaParseError,
    canonical_json,
    load_json,
)
from shoal.registry.formats.jsonschema import parse_json_schema
from shoal.registry.formats.protobuf import ProtobufSchema, decode_descriptor, parse_protobuf

__all__ = [
    "ParsedSchema",
    "ResolvedReference",
    "SchemaParseError",
    "identity",
    "parse_schema",
]

PARSERS: dict[str, Callable[[str, Sequence[ResolvedReference]], ParsedSchema]] = {
    "AVRO": parse_avro,
    "JSON": parse_json_schema,
    "PROTOBUF": parse_protobuf,
}


def parse_schema(
    schema_type: str, text: str, references: Sequence[ResolvedReference] = ()
) -> ParsedSchema:
    parser = PARSERS.get(schema_type)
    if parser is None:
        raise SchemaParseError(f"unknown schema type '{schema_type}'")
    return parser(text, references)


def identity(schema_type: str, text: str) -> str:
    """The text two registrations must share to get the same id: JSON schemas up to
    whitespace and key order; Protobuf descriptors up to their serialisation; .proto source
    exactly (compiling it on every replay would make start-up cost a protoc run per schema)."""
    if schema_type in ("AVRO", "JSON"):
        try:
            return canonical_json(load_json(text))
        except SchemaParseError:
            return text
    if schema_type == "PROTOBUF":
        descriptor = decode_descriptor(text)
        if descriptor is not None:
            return ProtobufSchema(descriptor).canonical
    return text.strip()
