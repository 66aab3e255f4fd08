"""JSON Schema: validity through the ``jsonschema`` package (draft 7 unless ``$schema`` names
another draft, such as 2020-12); compatibility as Confluent's registry judges it, by the
structural diff in :mod:`shoal.registry.formats.jsondiff`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from shoal.registry.formats.base import (
    ParsedSchema,
    ResolvedReference,
    SchemaParseError,
    canonical_json,
    load_json,
)
from shoal.registry.formats.jsondiff import COMPATIBLE_CHANGES, Doc, differences


class JsonSchema:
    schema_type = "JSON"

    def __init__(self, document: Any, references: dict[str, Any], canonical: str) -> None:
        self.document = document
        self.references = references
        self._canonical = canonical

    @property
    def canonical(self) -> str:
        return self._canonical

    @property
    def normal_form(self) -> str:
        """Keys sorted, no insignificant whitespace (Confluent's canonical ordering)."""
        return self._canonical

    def incompatibilities(self, writer: ParsedSchema) -> list[str]:
        if not isinstance(writer, JsonSchema):
            return ["the schema type changed (a subject's versions share one type)"]
        found = differences(
            writer.document,
            self.document,
            Doc(writer.document, writer.references),
            Doc(self.document, self.references),
        )
        return [
            f'{{errorType:"{kind}", path:"{path}"}}'
            for kind, path in found
            if kind not in COMPATIBLE_CHANGES
        ]

    def render(self, fmt: str | None) -> str | None:
        return None


def parse_json_schema(text: str, references: Sequence[ResolvedReference]) -> JsonSchema:
    document = load_json(text)
    refs = {ref.name: load_json(ref.schema) for ref in references}
    for name, ref_doc in refs.items():
        _check_valid(ref_doc, f"reference '{name}'")
    _check_valid(document, "schema")
    return JsonSchema(document, refs, canonical_json(document))


def _check_valid(document: Any, what: str) -> None:
    if not isinstance(document, dict | bool):
        raise SchemaParseError(f"{what}: a JSON schema is an object or a boolean")
    dialect = document.get("$schema", "") if isinstance(document, dict) else ""
    if not isinstance(dialect, str):
        # jsonschema looks the dialect up as a URI: a number or an array crashed it (TypeError,
        # AttributeError) instead of being refused (found by tests/fuzz, target registry).
        raise SchemaParseError(f"{what}: '$schema' must be a URI string, not {dialect!r}")
    try:
        validator = jsonschema.validators.validator_for(
            document, default=jsonschema.Draft7Validator
        )
    except ValueError as exc:
        # urllib's "Invalid IPv6 URL" for a '$schema' such as "http://[": not a URI at all.
        raise SchemaParseError(f"{what}: '$schema' is not a valid URI ({exc})") from exc
    try:
        validator.check_schema(document)  # type: ignore[arg-type]  # booleans are schemas too
    except jsonschema.exceptions.SchemaError as exc:
        raise SchemaParseError(f"{what}: {exc.message}") from exc
