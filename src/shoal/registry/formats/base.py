"""What every schema format provides: parse (with references) and a reader/writer check."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol


class SchemaParseError(Exception):
    """The schema text is not a valid schema of its type (Confluent's 42201)."""


@dataclass(frozen=True)
class ResolvedReference:
    """A reference with the text it names, in dependency order (dependencies first)."""

    name: str
    schema: str


class ParsedSchema(Protocol):
    @property
    def canonical(self) -> str:
        """Identity text: two registrations with equal canonical text get the same id."""
        ...

    @property
    def normal_form(self) -> str | None:
        """The schema text in its format's normal form (``?normalize=true``): semantically
        equal schemas written differently share it. None: the format keeps the text as given
        (Protobuf, whose equal schemas are matched on their normalised descriptors)."""
        ...

    def incompatibilities(self, writer: ParsedSchema) -> list[str]:
        """Why this schema, as a reader, cannot read data written with ``writer``; empty if it
        can."""
        ...

    def render(self, fmt: str | None) -> str | None:
        """The schema text in an alternative format (``?format=``), None if not supported."""
        ...


def canonical_json(data: Any) -> str:
    """Whitespace and key order carry no meaning in JSON schemas, so they do not change ids."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SchemaParseError(f"not valid JSON: {exc}") from exc
