"""Avro: parsed by fastavro (the library confluent-kafka's serializers use, so whatever is
accepted here those clients can use) and by the ``avro`` package, whose reader/writer checker
implements the specification's schema-resolution rules: fields added or removed with or
without defaults, promotions (int -> long -> float -> double, string <-> bytes), enum symbols
and defaults, unions, record and field aliases, fixed sizes.

References are named types defined by other subjects: their definitions are parsed first into
the same name table, so the main schema can use them by full name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import avro.errors
import avro.name
import avro.schema
import fastavro
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from shoal.registry.formats.base import (
    ParsedSchema,
    ResolvedReference,
    SchemaParseError,
    canonical_json,
    load_json,
)


class AvroSchema:
    schema_type = "AVRO"

    def __init__(self, schema: avro.schema.Schema, canonical: str) -> None:
        self.schema = schema
        self._canonical = canonical

    @property
    def canonical(self) -> str:
        return self._canonical

    @property
    def normal_form(self) -> str:
        """As the avro library writes the parsed schema back: full names, shorthand primitives
        (``{"type": "string"}`` becomes ``"string"``), attributes in one order; field order
        and defaults kept, since they carry meaning."""
        return canonical_json(self.schema.to_json())

    def incompatibilities(self, writer: ParsedSchema) -> list[str]:
        if not isinstance(writer, AvroSchema):
            return ["the schema type changed (a subject's versions share one type)"]
        checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
        result = checker.get_compatibility(self.schema, writer.schema)
        if result.compatibility is SchemaCompatibilityType.compatible:
            return []
        # The checker keeps messages and locations in sets, so they are reported side by side
        # rather than paired.
        kinds = ", ".join(sorted({i.name for i in result.incompatibilities}))
        messages = "; ".join(sorted(str(m) for m in result.messages))
        locations = ", ".join(sorted(str(loc) for loc in result.locations))
        return [f"{kinds}: {messages} (at {locations})"]

    def render(self, fmt: str | None) -> str | None:
        return None


def parse_avro(text: str, references: Sequence[ResolvedReference]) -> AvroSchema:
    names = avro.name.Names(validate_names=True)
    named_schemas: dict[str, Any] = {}
    for ref in references:
        _parse_one(load_json(ref.schema), names, named_schemas, f"reference '{ref.name}'")
    data = load_json(text)
    parsed = _parse_one(data, names, named_schemas, "schema")
    return AvroSchema(parsed, canonical_json(data))


def _parse_one(
    data: Any, names: avro.name.Names, named_schemas: dict[str, Any], what: str
) -> avro.schema.Schema:
    try:
        fastavro.parse_schema(data, named_schemas=named_schemas)
        return avro.schema.make_avsc_object(data, names)
    except (avro.errors.AvroException, fastavro.schema.SchemaParseException) as exc:
        raise SchemaParseError(f"{what}: {exc}") from exc
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # Both parsers raise plain errors for some shapes (a number where a type was expected).
        raise SchemaParseError(f"{what}: {type(exc).__name__}: {exc}") from exc
