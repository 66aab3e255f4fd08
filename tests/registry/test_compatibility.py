"""Table-driven compatibility verdicts per format and mode, after Confluent's documented rules.

Each case is (name, old schema, new schema, {mode: expected compatible?}). BACKWARD asks whether
the new schema reads data written with the old; FORWARD the reverse; FULL both.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from shoal.registry.formats import ParsedSchema, parse_schema

B, F, FULL = "BACKWARD", "FORWARD", "FULL"


@functools.cache
def _parse(schema_type: str, text: str) -> ParsedSchema:
    # Cached: each Protobuf parse runs protoc, and every case is checked in three modes.
    return parse_schema(schema_type, text)


def _verdict(schema_type: str, old: str, new: str, mode: str) -> bool:
    old_p, new_p = _parse(schema_type, old), _parse(schema_type, new)
    backward = not new_p.incompatibilities(old_p)
    forward = not old_p.incompatibilities(new_p)
    return {B: backward, F: forward, FULL: backward and forward}[mode]


def _rec(*fields: dict[str, Any], name: str = "R", **extra: Any) -> str:
    return json.dumps({"type": "record", "name": name, "fields": list(fields), **extra})


def _f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


A = _f("a", "int")
ENUM2 = {"type": "enum", "name": "E", "symbols": ["X", "Y"]}
ENUM3 = {"type": "enum", "name": "E", "symbols": ["X", "Y", "Z"]}
AVRO_CASES = [
    (
        "add field with default",
        _rec(A),
        _rec(A, _f("b", "int", default=0)),
        {B: True, F: True, FULL: True},
    ),
    (
        "add field without default",
        _rec(A),
        _rec(A, _f("b", "int")),
        {B: False, F: True, FULL: False},
    ),
    (
        "remove field with default",
        _rec(A, _f("b", "int", default=0)),
        _rec(A),
        {B: True, F: True, FULL: True},
    ),
    (
        "remove field without default",
        _rec(A, _f("b", "int")),
        _rec(A),
        {B: True, F: False, FULL: False},
    ),
    ("int to long", _rec(A), _rec(_f("a", "long")), {B: True, F: False, FULL: False}),
    ("long to int", _rec(_f("a", "long")), _rec(A), {B: False, F: True, FULL: False}),
    ("int to double", _rec(A), _rec(_f("a", "double")), {B: True, F: False, FULL: False}),
    (
        "float to double",
        _rec(_f("a", "float")),
        _rec(_f("a", "double")),
        {B: True, F: False, FULL: False},
    ),
    (
        "string to bytes",
        _rec(_f("a", "string")),
        _rec(_f("a", "bytes")),
        {B: True, F: True, FULL: True},
    ),
    ("int to string", _rec(A), _rec(_f("a", "string")), {B: False, F: False, FULL: False}),
    (
        "enum symbol added",
        _rec(_f("e", ENUM2)),
        _rec(_f("e", ENUM3)),
        {B: True, F: False, FULL: False},
    ),
    (
        "enum symbol removed",
        _rec(_f("e", ENUM3)),
        _rec(_f("e", ENUM2)),
        {B: False, F: True, FULL: False},
    ),
    (
        "enum symbol added with default",
        _rec(_f("e", ENUM2 | {"default": "X"})),
        _rec(_f("e", ENUM3 | {"default": "X"})),
        {B: True, F: True, FULL: True},
    ),
    (
        "type to union containing it",
        _rec(A),
        _rec(_f("a", ["null", "int"])),
        {B: True, F: False, FULL: False},
    ),
    (
        "union branch added",
        _rec(_f("a", ["null", "int"])),
        _rec(_f("a", ["null", "int", "string"])),
        {B: True, F: False, FULL: False},
    ),
    (
        "field renamed without alias",
        _rec(A),
        _rec(_f("z", "int")),
        {B: False, F: False, FULL: False},
    ),
    (
        "field renamed with alias",
        _rec(A),
        _rec(_f("z", "int", aliases=["a"])),
        {B: True, F: False, FULL: False},
    ),
    ("record renamed without alias", _rec(A), _rec(A, name="S"), {B: False, F: False, FULL: False}),
    (
        "record renamed with alias",
        _rec(A),
        _rec(A, name="S", aliases=["R"]),
        {B: True, F: False, FULL: False},
    ),
    (
        "nested record field added with default",
        _rec(_f("n", json.loads(_rec(A, name="N")))),
        _rec(_f("n", json.loads(_rec(A, _f("b", "string", default=""), name="N")))),
        {B: True, F: True, FULL: True},
    ),
    (
        "nested record field type changed",
        _rec(_f("n", json.loads(_rec(A, name="N")))),
        _rec(_f("n", json.loads(_rec(_f("a", "string"), name="N")))),
        {B: False, F: False, FULL: False},
    ),
    (
        "fixed size changed",
        _rec(_f("x", {"type": "fixed", "name": "X", "size": 4})),
        _rec(_f("x", {"type": "fixed", "name": "X", "size": 8})),
        {B: False, F: False, FULL: False},
    ),
    (
        "array item promoted",
        _rec(_f("a", {"type": "array", "items": "int"})),
        _rec(_f("a", {"type": "array", "items": "long"})),
        {B: True, F: False, FULL: False},
    ),
    ("identical", _rec(A), _rec(A), {B: True, F: True, FULL: True}),
]


def _obj(props: dict[str, Any], required: list[str] | None = None, extra: Any = None) -> str:
    doc: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        doc["required"] = required
    if extra is not None:
        doc["additionalProperties"] = extra
    return json.dumps(doc)


S, INT, NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}
JSON_CASES = [
    ("identical", _obj({"a": S}), _obj({"a": S}), {B: True, F: True, FULL: True}),
    (
        "optional property added to closed model",
        _obj({"a": S}, extra=False),
        _obj({"a": S, "b": INT}, extra=False),
        {B: True, F: False, FULL: False},
    ),
    (
        "optional property added to open model",
        _obj({"a": S}),
        _obj({"a": S, "b": INT}),
        {B: False, F: True, FULL: False},
    ),
    (
        "property removed from closed model",
        _obj({"a": S, "b": INT}, extra=False),
        _obj({"a": S}, extra=False),
        {B: False, F: True, FULL: False},
    ),
    (
        "property removed from open model",
        _obj({"a": S, "b": INT}),
        _obj({"a": S}),
        {B: True, F: False, FULL: False},
    ),
    (
        "required property added",
        _obj({"a": S, "b": INT}, extra=False),
        _obj({"a": S, "b": INT}, ["b"], extra=False),
        {B: False, F: True, FULL: False},
    ),
    (
        "required property dropped",
        _obj({"a": S}, ["a"]),
        _obj({"a": S}),
        {B: True, F: False, FULL: False},
    ),
    (
        "integer widened to number",
        _obj({"a": INT}),
        _obj({"a": NUM}),
        {B: True, F: False, FULL: False},
    ),
    (
        "number narrowed to integer",
        _obj({"a": NUM}),
        _obj({"a": INT}),
        {B: False, F: True, FULL: False},
    ),
    ("string to integer", _obj({"a": S}), _obj({"a": INT}), {B: False, F: False, FULL: False}),
    (
        "type union widened",
        _obj({"a": S}),
        _obj({"a": {"type": ["string", "null"]}}),
        {B: True, F: False, FULL: False},
    ),
    (
        "enum value added",
        _obj({"a": {"enum": ["x", "y"]}}),
        _obj({"a": {"enum": ["x", "y", "z"]}}),
        {B: True, F: False, FULL: False},
    ),
    (
        "enum value removed",
        _obj({"a": {"enum": ["x", "y"]}}),
        _obj({"a": {"enum": ["x"]}}),
        {B: False, F: True, FULL: False},
    ),
    (
        "enum added",
        _obj({"a": S}),
        _obj({"a": {"type": "string", "enum": ["x"]}}),
        {B: False, F: True, FULL: False},
    ),
    (
        "maximum decreased",
        _obj({"a": {"type": "integer", "maximum": 10}}),
        _obj({"a": {"type": "integer", "maximum": 5}}),
        {B: False, F: True, FULL: False},
    ),
    (
        "maximum increased",
        _obj({"a": {"type": "integer", "maximum": 10}}),
        _obj({"a": {"type": "integer", "maximum": 20}}),
        {B: True, F: False, FULL: False},
    ),
    (
        "minimum added",
        _obj({"a": INT}),
        _obj({"a": {"type": "integer", "minimum": 0}}),
        {B: False, F: True, FULL: False},
    ),
    (
        "maxLength decreased",
        _obj({"a": {"type": "string", "maxLength": 10}}),
        _obj({"a": {"type": "string", "maxLength": 5}}),
        {B: False, F: True, FULL: False},
    ),
    (
        "minLength removed",
        _obj({"a": {"type": "string", "minLength": 2}}),
        _obj({"a": S}),
        {B: True, F: False, FULL: False},
    ),
    (
        "pattern added",
        _obj({"a": S}),
        _obj({"a": {"type": "string", "pattern": "^x"}}),
        {B: False, F: True, FULL: False},
    ),
    ("model closed", _obj({"a": S}), _obj({"a": S}, extra=False), {B: False, F: True, FULL: False}),
    (
        "array items narrowed",
        _obj({"a": {"type": "array", "items": NUM}}),
        _obj({"a": {"type": "array", "items": INT}}),
        {B: False, F: True, FULL: False},
    ),
    (
        "maxItems added",
        _obj({"a": {"type": "array"}}),
        _obj({"a": {"type": "array", "maxItems": 3}}),
        {B: False, F: True, FULL: False},
    ),
    (
        "oneOf branch added",
        _obj({"a": {"oneOf": [S, INT]}}),
        _obj({"a": {"oneOf": [S, INT, {"type": "null"}]}}),
        {B: True, F: False, FULL: False},
    ),
    (
        "local $ref target widened",
        json.dumps(
            {
                "definitions": {"q": INT},
                "type": "object",
                "properties": {"a": {"$ref": "#/definitions/q"}},
            }
        ),
        json.dumps(
            {
                "definitions": {"q": NUM},
                "type": "object",
                "properties": {"a": {"$ref": "#/definitions/q"}},
            }
        ),
        {B: True, F: False, FULL: False},
    ),
]


def _proto(body: str, package: str = "p") -> str:
    return f'syntax = "proto3";\npackage {package};\n{body}\n'


def _proto2(body: str) -> str:
    return f'syntax = "proto2";\npackage p;\n{body}\n'


M1 = "message M { int32 a = 1; }"
PROTO_CASES = [
    ("identical", _proto(M1), _proto(M1), {B: True, F: True, FULL: True}),
    (
        "field added",
        _proto(M1),
        _proto("message M { int32 a = 1; string b = 2; }"),
        {B: True, F: True, FULL: True},
    ),
    (
        "field removed",
        _proto("message M { int32 a = 1; string b = 2; }"),
        _proto(M1),
        {B: True, F: True, FULL: True},
    ),
    (
        "field renamed",
        _proto(M1),
        _proto("message M { int32 z = 1; }"),
        {B: True, F: True, FULL: True},
    ),
    (
        "int32 to int64",
        _proto(M1),
        _proto("message M { int64 a = 1; }"),
        {B: True, F: True, FULL: True},
    ),
    (
        "int32 to string",
        _proto(M1),
        _proto("message M { string a = 1; }"),
        {B: False, F: False, FULL: False},
    ),
    (
        "string to bytes",
        _proto("message M { string a = 1; }"),
        _proto("message M { bytes a = 1; }"),
        {B: True, F: True, FULL: True},
    ),
    (
        "sint32 to int32",
        _proto("message M { sint32 a = 1; }"),
        _proto(M1),
        {B: False, F: False, FULL: False},
    ),
    (
        "fixed32 to sfixed32",
        _proto("message M { fixed32 a = 1; }"),
        _proto("message M { sfixed32 a = 1; }"),
        {B: True, F: True, FULL: True},
    ),
    (
        "fixed32 to fixed64",
        _proto("message M { fixed32 a = 1; }"),
        _proto("message M { fixed64 a = 1; }"),
        {B: False, F: False, FULL: False},
    ),
    (
        "field number reused with another type",
        _proto("message M { int32 a = 1; string b = 2; }"),
        _proto("message M { int32 a = 1; double c = 2; }"),
        {B: False, F: False, FULL: False},
    ),
    (
        "reserved number reused",
        _proto("message M { int32 a = 1; reserved 2; }"),
        _proto("message M { int32 a = 1; string c = 2; }"),
        {B: False, F: True, FULL: False},
    ),
    (
        "message removed",
        _proto(M1 + " message N { int32 x = 1; }"),
        _proto(M1),
        {B: False, F: True, FULL: False},
    ),
    (
        "message added",
        _proto(M1),
        _proto(M1 + " message N { int32 x = 1; }"),
        {B: True, F: False, FULL: False},
    ),
    ("package changed", _proto(M1), _proto(M1, package="q"), {B: False, F: False, FULL: False}),
    (
        "message field type changed",
        _proto("message A {} message B {} message M { A a = 1; }"),
        _proto("message A {} message B {} message M { B a = 1; }"),
        {B: False, F: False, FULL: False},
    ),
    (
        "scalar to message",
        _proto("message A {} message M { int32 a = 1; }"),
        _proto("message A {} message M { A a = 1; }"),
        {B: False, F: False, FULL: False},
    ),
    (
        "singular int to repeated",
        _proto(M1),
        _proto("message M { repeated int32 a = 1; }"),
        {B: False, F: False, FULL: False},
    ),
    (
        "singular string to repeated",
        _proto("message M { string a = 1; }"),
        _proto("message M { repeated string a = 1; }"),
        {B: True, F: True, FULL: True},
    ),
    (
        "required field added",
        _proto2("message M { optional int32 a = 1; }"),
        _proto2("message M { optional int32 a = 1; required int32 b = 2; }"),
        {B: False, F: True, FULL: False},
    ),
    (
        "required field removed",
        _proto2("message M { optional int32 a = 1; required int32 b = 2; }"),
        _proto2("message M { optional int32 a = 1; }"),
        {B: True, F: False, FULL: False},
    ),
    (
        "one field moved into new oneof",
        _proto("message M { int32 a = 1; string b = 2; }"),
        _proto("message M { oneof o { int32 a = 1; } string b = 2; }"),
        {B: True, F: True, FULL: True},
    ),
    (
        "two fields moved into new oneof",
        _proto("message M { int32 a = 1; string b = 2; }"),
        _proto("message M { oneof o { int32 a = 1; string b = 2; } }"),
        {B: False, F: True, FULL: False},
    ),
    (
        "field moved into existing oneof",
        _proto("message M { oneof o { int32 a = 1; } string b = 2; }"),
        _proto("message M { oneof o { int32 a = 1; string b = 2; } }"),
        {B: False, F: True, FULL: False},
    ),
    (
        "field removed from oneof",
        _proto("message M { oneof o { int32 a = 1; string b = 2; } }"),
        _proto("message M { oneof o { int32 a = 1; } }"),
        {B: False, F: True, FULL: False},
    ),
    (
        "enum value added",
        _proto("enum E { X = 0; } message M { E e = 1; }"),
        _proto("enum E { X = 0; Y = 1; } message M { E e = 1; }"),
        {B: True, F: True, FULL: True},
    ),
]


def _expand(schema_type: str, cases: list[Any]) -> list[Any]:
    return [
        pytest.param(schema_type, old, new, mode, expected, id=f"{schema_type}-{name}-{mode}")
        for name, old, new, verdicts in cases
        for mode, expected in verdicts.items()
    ]


@pytest.mark.parametrize(
    ("schema_type", "old", "new", "mode", "expected"),
    _expand("AVRO", AVRO_CASES) + _expand("JSON", JSON_CASES) + _expand("PROTOBUF", PROTO_CASES),
)
def test_verdict(schema_type: str, old: str, new: str, mode: str, expected: bool) -> None:
    assert _verdict(schema_type, old, new, mode) is expected


def test_each_format_has_at_least_twenty_cases() -> None:
    assert min(len(AVRO_CASES), len(JSON_CASES), len(PROTO_CASES)) >= 20
