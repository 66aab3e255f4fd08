"""JSON Schema records through a schema registry, in Confluent's wire format.

The payload after the header is plain JSON, validated against the schema when written and
when read, so a record that breaks its contract is refused at either end.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from shoal.app.serdes.payload import SerdeError
from shoal.app.serdes.payload import encode as json_encode
from shoal.app.serdes.registry import (
    RegisteredSchema,
    RegistryClient,
    SubjectStrategy,
    frame,
    topic_name_strategy,
    unframe,
)
from shoal.app.serdes.schema_cache import SchemaCache

Validator = Any  # jsonschema's validator classes share no useful static type


def _validator(schema: dict[str, Any]) -> Validator:
    """A validator for the draft ``schema`` names ($schema), checking the schema itself."""
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


async def _registered_validator(registered: RegisteredSchema) -> Validator:
    return _validator(json.loads(registered.schema))


def _first_error(validator: Validator, instance: Any) -> str | None:
    """The clearest violation of ``instance``, with the path of the field at fault."""
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path)
    return f"field {where!r}: {error.message}" if where else error.message


class JsonSchemaCodec:
    """JSON validated by a JSON Schema held in the registry at ``registry_url``.

    ``schema``: a dict, or a pydantic model (its ``model_json_schema()``; decoded records are
    then instances of it). Without one, records are written with the subject's latest version
    and read as dicts validated by their writer schema. ``auto_register``, ``use_latest`` and
    ``subject`` as for :class:`~shoal.app.serdes.schemas.AvroCodec`.
    """

    def __init__(
        self,
        registry_url: str,
        schema: dict[str, Any] | type | None = None,
        *,
        auto_register: bool = True,
        use_latest: bool = False,
        subject: SubjectStrategy | None = None,
    ) -> None:
        self.model: Any = None
        if isinstance(schema, type):
            model_json_schema = getattr(schema, "model_json_schema", None)
            if not callable(model_json_schema):
                raise TypeError(f"schema must be a dict or a pydantic model class: {schema!r}")
            self.model = schema
            self.schema: dict[str, Any] | None = model_json_schema()
        else:
            self.schema = schema
        self._reader = None if self.schema is None else _validator(self.schema)
        self._text = None if self.schema is None else json.dumps(self.schema)
        self.auto_register = auto_register
        self.use_latest = use_latest or self.schema is None
        self.subject = subject or topic_name_strategy
        self.registry = RegistryClient(registry_url)
        self._schemas: SchemaCache[Validator] = SchemaCache(
            self.registry,
            "JSON",
            _registered_validator,
            schema=self._text,
            auto_register=self.auto_register,
            use_latest=self.use_latest,
        )

    async def encode(self, topic: str, value: object) -> bytes:
        schema_id, validator = await self._schemas.writer(self.subject(topic))
        # The JSON serde's encoding (pydantic, msgspec, dataclasses, enums, datetimes), parsed
        # back so the validator sees exactly what a reader will.
        if isinstance(value, bytes | bytearray | memoryview):
            raise ValueError("JsonSchemaCodec encodes JSON values, not bytes")
        # (the serde writes a str as raw text; here it is a JSON string like any other value)
        try:
            payload = json.dumps(value).encode() if isinstance(value, str) else json_encode(value)
        except SerdeError as exc:
            raise ValueError(str(exc)) from exc
        problem = _first_error(validator, json.loads(payload))
        if problem is not None:
            raise ValueError(f"the value does not fit JSON schema id {schema_id}: {problem}")
        return frame(schema_id, payload)

    async def decode(self, topic: str, raw: bytes) -> Any:
        schema_id, payload = unframe(raw)
        # The writer's schema is fetched even when the codec has its own: an id the registry
        # does not know means the record is not what it claims to be.
        validator = await self._schemas.reader(schema_id)
        if self._reader is not None:
            validator = self._reader
        try:
            instance = json.loads(bytes(payload))
        except ValueError as exc:
            raise SerdeError(f"the payload of schema id {schema_id} is not JSON: {exc}") from exc
        problem = _first_error(validator, instance)
        if problem is not None:
            raise SerdeError(f"the record does not fit its JSON schema: {problem}")
        return instance if self.model is None else self.model.model_validate(instance)
