"""Schemas the parsers once crashed on (found by tests/fuzz): each is refused as invalid (42201).

A crash here was an exception other than SchemaParseError, which the registry answered with a
500 instead of telling the client its schema is invalid.
"""

from __future__ import annotations

import json

import pytest

from shoal.registry.formats import SchemaParseError, parse_schema


@pytest.mark.parametrize(
    "dialect",
    [
        "http://json-schem]a.org/draft-07/schema#",  # urllib: "Invalid IPv6 URL"
        "http://[::1",
        5,
        ["http://json-schema.org/draft-07/schema#"],
        {"uri": "x"},
    ],
)
def test_a_json_schema_with_a_malformed_dialect_is_refused(dialect: object) -> None:
    text = json.dumps({"$schema": dialect, "type": "object"})
    with pytest.raises(SchemaParseError, match=r"\$schema"):
        parse_schema("JSON", text)


def test_a_json_schema_with_a_known_dialect_still_parses() -> None:
    text = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"})
    assert parse_schema("JSON", text).canonical
