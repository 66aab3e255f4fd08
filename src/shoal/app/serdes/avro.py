"""Avro records through a schema registry, in Confluent's wire format.

Encoding writes with the schema registered for the subject (or its latest version); decoding
reads with the writer schema the record names and resolves it to the codec's own schema, which
is how a consumer keeps working while producers evolve the schema.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import fastavro.validation
from fastavro.types import Schema as ParsedSchema

from shoal.app.serdes.avro_types import avro_schema, builder, is_record_type, to_avro
from shoal.app.serdes.payload import SerdeError
from shoal.app.serdes.registry import (
    RegisteredSchema,
    RegistryClient,
    SubjectStrategy,
    frame,
    topic_name_strategy,
    unframe,
)
from shoal.app.serdes.schema_cache import SchemaCache

REFERENCE_DEPTH_MAX = 32
"""Schemas importing schemas: a registry holding a cycle must not send us into a loop."""


def _load_schema(schema: str | dict[str, Any] | Path) -> Any:
    """A schema from a dict, JSON text, or an .avsc file (a Path, or a str that is not JSON:
    Avro schema text always starts with '{', '[' or '"')."""
    if isinstance(schema, str) and not schema.lstrip().startswith(("{", "[", '"')):
        schema = Path(schema)
    if isinstance(schema, Path):
        return json.loads(schema.read_text(encoding="utf-8"))
    if isinstance(schema, str):
        return json.loads(schema)
    return schema


class AvroCodec:
    """Avro through the schema registry at ``registry_url``.

    ``schema`` (an .avsc path, JSON text or a dict) or ``record_type`` (a dataclass or pydantic
    model, whose schema is derived) is what records are written with and read into; with
    neither, the codec reads records as dicts with their writer schema and writes with the
    subject's latest version. ``auto_register``: register the schema on first use (else it
    must be registered). ``use_latest``: write with the subject's latest version instead.
    ``subject``: the subject of a topic (default ``<topic>-value``).
    """

    def __init__(
        self,
        registry_url: str,
        schema: str | dict[str, Any] | Path | None = None,
        *,
        record_type: type | None = None,
        auto_register: bool = True,
        use_latest: bool = False,
        subject: SubjectStrategy | None = None,
    ) -> None:
        if record_type is not None and not is_record_type(record_type):
            raise TypeError(f"record_type must be a dataclass or pydantic model: {record_type!r}")
        if schema is None and record_type is not None:
            schema = avro_schema(record_type)
        self.schema: Any = None if schema is None else _load_schema(schema)
        # Parsing checks the schema now, at declaration, rather than at the first record.
        self._reader: ParsedSchema | None = (
            None if self.schema is None else fastavro.parse_schema(self.schema)
        )
        self._text = None if self.schema is None else json.dumps(self.schema)
        self.record_type = record_type
        self._build = builder(record_type) if record_type is not None else None
        self.auto_register = auto_register
        self.use_latest = use_latest or schema is None
        self.subject = subject or topic_name_strategy
        self.registry = RegistryClient(registry_url)
        self._schemas = SchemaCache(
            self.registry,
            "AVRO",
            self._parse,
            schema=self._text,
            auto_register=self.auto_register,
            use_latest=self.use_latest,
        )

    async def encode(self, topic: str, value: object) -> bytes:
        schema_id, writer = await self._schemas.writer(self.subject(topic))
        datum = to_avro(value)
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, writer, datum)
        except Exception as exc:
            raise _mismatch(writer, datum, exc) from exc
        return frame(schema_id, out.getvalue())

    async def decode(self, topic: str, raw: bytes) -> Any:
        schema_id, payload = unframe(raw)
        writer = await self._schemas.reader(schema_id)
        buffer = io.BytesIO(payload)
        try:
            datum = fastavro.schemaless_reader(buffer, writer, self._reader)
        except Exception as exc:
            raise SerdeError(
                f"the payload does not match Avro schema id {schema_id}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if buffer.tell() != len(payload):
            raise SerdeError(
                f"{len(payload) - buffer.tell()} bytes left over after reading the record with "
                f"schema id {schema_id}: the payload does not match its schema"
            )
        return datum if self._build is None else self._build(datum)

    async def _parse(
        self, registered: RegisteredSchema, depth: int = 0, named: dict[str, Any] | None = None
    ) -> ParsedSchema:
        """Parse a registered schema, first parsing the schemas it references (named types
        defined in other subjects) so its references to them resolve."""
        if depth > REFERENCE_DEPTH_MAX:
            raise SerdeError(f"schema references nest deeper than {REFERENCE_DEPTH_MAX}")
        named = {} if named is None else named
        for ref in registered.references:
            imported = await self.registry.version(ref.subject, ref.version)
            await self._parse(imported, depth + 1, named)
        return fastavro.parse_schema(json.loads(registered.schema), named_schemas=named)


def _mismatch(schema: ParsedSchema, datum: Any, exc: Exception) -> ValueError:
    """A ValueError naming the field that does not fit, which fastavro's writer errors do not
    always do; its validator does, so it runs only once a write has failed."""
    try:
        fastavro.validation.validate(datum, schema, raise_errors=True)
    except fastavro.validation.ValidationError as invalid:
        details = "; ".join(str(e) for e in invalid.errors) or str(invalid)
        return ValueError(f"the value does not fit the Avro schema: {details}")
    except Exception as other:  # the validator itself chokes on some shapes of bad data
        return ValueError(f"the value does not fit the Avro schema: {other}")
    return ValueError(f"the value does not fit the Avro schema: {type(exc).__name__}: {exc}")
