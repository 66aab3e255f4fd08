"""JSON Schema compatibility rule by rule, after Confluent's ``SchemaDiff`` (json-schema-provider,
``io.confluent.kafka.schemaregistry.json.diff``): each case names the ``Difference.Type`` the
change from the old schema (writer) to the new one (reader) must produce, and whether BACKWARD
(the new schema reads data written with the old) accepts it under Confluent's default STRICT
policy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shoal.registry.formats import parse_schema
from shoal.registry.formats.jsondiff import COMPATIBLE_CHANGES, Doc, differences

S: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
N: dict[str, Any] = {"type": "number"}
ARR: dict[str, Any] = {"type": "array"}


def _s(**kw: Any) -> dict[str, Any]:
    return {"type": "string", **kw}


def _n(**kw: Any) -> dict[str, Any]:
    return {"type": "number", **kw}


def _a(**kw: Any) -> dict[str, Any]:
    return {"type": "array", **kw}


def _o(props: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props or {}, **kw}


def _tuple(*items: Any, **kw: Any) -> dict[str, Any]:
    return {"type": "array", "items": list(items), **kw}


DRAFT_2020 = "https://json-schema.org/draft/2020-12/schema"


def _o20(props: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"$schema": DRAFT_2020, "type": "object", "properties": props, **kw}


def _p20(*items: Any, **kw: Any) -> dict[str, Any]:
    return {"$schema": DRAFT_2020, "type": "array", "prefixItems": list(items), **kw}


CLOSED = {"additionalProperties": False}
STR_EXTRA = {"additionalProperties": S}

# (Difference.Type, old schema, new schema, BACKWARD-compatible?)
RULES: list[tuple[str, Any, Any, bool]] = [
    # --- SchemaDiff: kinds of schema
    ("TYPE_CHANGED", S, INT, False),
    ("TYPE_CHANGED", {"enum": ["A", "B"]}, INT, False),
    ("TYPE_CHANGED", _o({"a": {"enum": ["A", "B"]}}), _o({"a": INT}), False),
    ("TYPE_CHANGED", {"const": "A"}, INT, False),
    ("TYPE_CHANGED", _o({"a": {"const": "A"}}), _o({"a": INT}), False),
    ("TYPE_CHANGED", INT, {"enum": [1, 2]}, False),
    ("TYPE_CHANGED", {}, S, False),
    ("TYPE_CHANGED", S, {"type": "string", "enum": ["x"]}, False),
    ("ID_CHANGED", _s(**{"$id": "urn:a"}), _s(**{"$id": "urn:b"}), True),
    ("TITLE_CHANGED", _s(title="a"), _s(title="b"), True),
    ("DESCRIPTION_CHANGED", _s(description="a"), _s(description="b"), True),
    ("DEFAULT_CHANGED", _s(default="a"), _s(default="b"), True),
    ("SCHEMA_ADDED", ARR, _a(items=S), False),
    ("SCHEMA_REMOVED", _a(items=S), ARR, True),
    # --- StringSchemaDiff
    ("MAX_LENGTH_ADDED", S, _s(maxLength=5), False),
    ("MAX_LENGTH_REMOVED", _s(maxLength=5), S, True),
    ("MAX_LENGTH_INCREASED", _s(maxLength=5), _s(maxLength=9), True),
    ("MAX_LENGTH_DECREASED", _s(maxLength=9), _s(maxLength=5), False),
    ("MIN_LENGTH_ADDED", S, _s(minLength=2), False),
    ("MIN_LENGTH_REMOVED", _s(minLength=2), S, True),
    ("MIN_LENGTH_INCREASED", _s(minLength=2), _s(minLength=3), False),
    ("MIN_LENGTH_DECREASED", _s(minLength=3), _s(minLength=2), True),
    ("PATTERN_ADDED", S, _s(pattern="^a"), False),
    ("PATTERN_REMOVED", _s(pattern="^a"), S, True),
    ("PATTERN_CHANGED", _s(pattern="^a"), _s(pattern="^b"), False),
    # --- NumberSchemaDiff
    ("MAXIMUM_ADDED", N, _n(maximum=5), False),
    ("MAXIMUM_REMOVED", _n(maximum=5), N, True),
    ("MAXIMUM_INCREASED", _n(maximum=5), _n(maximum=9), True),
    ("MAXIMUM_DECREASED", _n(maximum=9), _n(maximum=5), False),
    ("MINIMUM_ADDED", N, _n(minimum=1), False),
    ("MINIMUM_REMOVED", _n(minimum=1), N, True),
    ("MINIMUM_INCREASED", _n(minimum=1), _n(minimum=2), False),
    ("MINIMUM_DECREASED", _n(minimum=2), _n(minimum=1), True),
    ("EXCLUSIVE_MAXIMUM_ADDED", N, _n(exclusiveMaximum=5), False),
    ("EXCLUSIVE_MAXIMUM_REMOVED", _n(exclusiveMaximum=5), N, True),
    ("EXCLUSIVE_MAXIMUM_INCREASED", _n(exclusiveMaximum=5), _n(exclusiveMaximum=9), True),
    ("EXCLUSIVE_MAXIMUM_DECREASED", _n(exclusiveMaximum=9), _n(exclusiveMaximum=5), False),
    ("EXCLUSIVE_MINIMUM_ADDED", N, _n(exclusiveMinimum=1), False),
    ("EXCLUSIVE_MINIMUM_REMOVED", _n(exclusiveMinimum=1), N, True),
    ("EXCLUSIVE_MINIMUM_INCREASED", _n(exclusiveMinimum=1), _n(exclusiveMinimum=2), False),
    ("EXCLUSIVE_MINIMUM_DECREASED", _n(exclusiveMinimum=2), _n(exclusiveMinimum=1), True),
    ("MULTIPLE_OF_ADDED", N, _n(multipleOf=2), False),
    ("MULTIPLE_OF_REMOVED", _n(multipleOf=2), N, True),
    ("MULTIPLE_OF_EXPANDED", _n(multipleOf=2), _n(multipleOf=4), False),
    ("MULTIPLE_OF_REDUCED", _n(multipleOf=4), _n(multipleOf=2), True),
    ("MULTIPLE_OF_CHANGED", _n(multipleOf=2), _n(multipleOf=3), False),
    ("TYPE_EXTENDED", INT, N, True),
    ("TYPE_NARROWED", N, INT, False),
    # --- ObjectSchemaDiff: required
    ("REQUIRED_ATTRIBUTE_ADDED", _o({"a": S}), _o({"a": S}, required=["a"]), False),
    (
        "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
        _o({"a": S}),
        _o({"a": _s(default="x")}, required=["a"]),
        True,
    ),
    ("REQUIRED_ATTRIBUTE_REMOVED", _o({"a": S}, required=["a"]), _o({"a": S}), True),
    # --- ObjectSchemaDiff: properties against the content model
    ("OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", _o({"a": S}), _o({"a": S, "b": INT}), False),
    (
        "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
        _o({"a": S}),
        _o({"a": S, "b": INT}, required=["b"]),
        False,
    ),
    (
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL",
        _o({"a": S}),
        _o({"a": S, "b": {"type": "integer", "default": 0}}, required=["b"]),
        False,
    ),
    (
        "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        _o({"a": S}),
        _o({"a": S, "b": {}}),
        True,
    ),
    (
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        _o({"a": S}, **CLOSED),
        _o({"a": S, "b": INT}, **CLOSED),
        True,
    ),
    (
        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        _o({"a": S}, **CLOSED),
        _o({"a": S, "b": INT}, required=["b"], **CLOSED),
        False,
    ),
    (
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
        _o({"a": S}, **CLOSED),
        _o({"a": S, "b": {"type": "integer", "default": 0}}, required=["b"], **CLOSED),
        True,
    ),
    ("PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", _o({"a": S, "b": INT}), _o({"a": S}), True),
    (
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        _o({"a": S, "b": INT}, **CLOSED),
        _o({"a": S}, **CLOSED),
        False,
    ),
    (
        "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        _o({"a": S, "b": False}, **CLOSED),
        _o({"a": S}, **CLOSED),
        True,
    ),
    (
        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _o({"a": S, "b": S}, **STR_EXTRA),
        _o({"a": S}, **STR_EXTRA),
        True,
    ),
    (
        "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _o({"a": S, "b": INT}, **STR_EXTRA),
        _o({"a": S}, **STR_EXTRA),
        False,
    ),
    (
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _o({"a": S}, **STR_EXTRA),
        _o({"a": S, "b": S}, **STR_EXTRA),
        True,
    ),
    (
        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _o({"a": S}, **STR_EXTRA),
        _o({"a": S, "b": INT}, **STR_EXTRA),
        False,
    ),
    # The partial schema is compared writer -> reader: an integer is read as a number
    # (TYPE_EXTENDED), not the other way round.
    (
        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _o({"a": S, "b": INT}, additionalProperties=N),
        _o({"a": S}, additionalProperties=N),
        True,
    ),
    (
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _o({"a": S}, additionalProperties=INT),
        _o({"a": S, "b": N}, additionalProperties=INT),
        True,
    ),
    (
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",  # by a patternProperties
        _o({"a": S}, patternProperties={"^x_": S}),
        _o({"a": S, "x_b": S}, patternProperties={"^x_": S}),
        True,
    ),
    # --- ObjectSchemaDiff: additionalProperties, dependencies, sizes
    ("ADDITIONAL_PROPERTIES_ADDED", _o({"a": S}, **CLOSED), _o({"a": S}), True),
    ("ADDITIONAL_PROPERTIES_REMOVED", _o({"a": S}), _o({"a": S}, **CLOSED), False),
    ("ADDITIONAL_PROPERTIES_EXTENDED", _o({"a": S}, **STR_EXTRA), _o({"a": S}), True),
    ("ADDITIONAL_PROPERTIES_NARROWED", _o({"a": S}), _o({"a": S}, **STR_EXTRA), False),
    ("DEPENDENCY_ARRAY_ADDED", _o({"a": S}), _o({"a": S}, dependencies={"a": ["b"]}), False),
    ("DEPENDENCY_ARRAY_REMOVED", _o({"a": S}, dependencies={"a": ["b"]}), _o({"a": S}), True),
    (
        "DEPENDENCY_ARRAY_EXTENDED",
        _o({"a": S}, dependencies={"a": ["b"]}),
        _o({"a": S}, dependencies={"a": ["b", "c"]}),
        False,
    ),
    (
        "DEPENDENCY_ARRAY_NARROWED",
        _o({"a": S}, dependencies={"a": ["b", "c"]}),
        _o({"a": S}, dependencies={"a": ["b"]}),
        True,
    ),
    (
        "DEPENDENCY_ARRAY_CHANGED",
        _o({"a": S}, dependencies={"a": ["b"]}),
        _o({"a": S}, dependencies={"a": ["c"]}),
        False,
    ),
    (
        "DEPENDENCY_SCHEMA_ADDED",
        _o({"a": S}),
        _o({"a": S}, dependencies={"a": {"required": ["b"]}}),
        False,
    ),
    (
        "DEPENDENCY_SCHEMA_REMOVED",
        _o({"a": S}, dependencies={"a": {"required": ["b"]}}),
        _o({"a": S}),
        True,
    ),
    ("MAX_PROPERTIES_ADDED", _o(), _o(maxProperties=3), False),
    ("MAX_PROPERTIES_REMOVED", _o(maxProperties=3), _o(), True),
    ("MAX_PROPERTIES_INCREASED", _o(maxProperties=3), _o(maxProperties=4), True),
    ("MAX_PROPERTIES_DECREASED", _o(maxProperties=4), _o(maxProperties=3), False),
    ("MIN_PROPERTIES_ADDED", _o(), _o(minProperties=1), False),
    ("MIN_PROPERTIES_REMOVED", _o(minProperties=1), _o(), True),
    ("MIN_PROPERTIES_INCREASED", _o(minProperties=1), _o(minProperties=2), False),
    ("MIN_PROPERTIES_DECREASED", _o(minProperties=2), _o(minProperties=1), True),
    # --- ArraySchemaDiff: sizes and uniqueness
    ("MAX_ITEMS_ADDED", ARR, _a(maxItems=3), False),
    ("MAX_ITEMS_REMOVED", _a(maxItems=3), ARR, True),
    ("MAX_ITEMS_INCREASED", _a(maxItems=3), _a(maxItems=4), True),
    ("MAX_ITEMS_DECREASED", _a(maxItems=4), _a(maxItems=3), False),
    ("MIN_ITEMS_ADDED", ARR, _a(minItems=1), False),
    ("MIN_ITEMS_REMOVED", _a(minItems=1), ARR, True),
    ("MIN_ITEMS_INCREASED", _a(minItems=1), _a(minItems=2), False),
    ("MIN_ITEMS_DECREASED", _a(minItems=2), _a(minItems=1), True),
    ("MAX_CONTAINS_ADDED", _a(contains=S), _a(contains=S, maxContains=2), False),
    ("MAX_CONTAINS_REMOVED", _a(contains=S, maxContains=2), _a(contains=S), True),
    ("MAX_CONTAINS_INCREASED", _a(contains=S, maxContains=2), _a(contains=S, maxContains=3), True),
    ("MAX_CONTAINS_DECREASED", _a(contains=S, maxContains=3), _a(contains=S, maxContains=2), False),
    ("MIN_CONTAINS_ADDED", _a(contains=S), _a(contains=S, minContains=2), False),
    ("MIN_CONTAINS_REMOVED", _a(contains=S, minContains=2), _a(contains=S), True),
    ("MIN_CONTAINS_INCREASED", _a(contains=S, minContains=2), _a(contains=S, minContains=3), False),
    ("MIN_CONTAINS_DECREASED", _a(contains=S, minContains=3), _a(contains=S, minContains=2), True),
    ("UNIQUE_ITEMS_ADDED", ARR, _a(uniqueItems=True), False),
    ("UNIQUE_ITEMS_REMOVED", _a(uniqueItems=True), ARR, True),
    # --- ArraySchemaDiff: tuple items against the content model
    ("ADDITIONAL_ITEMS_ADDED", _tuple(S, additionalItems=False), _tuple(S), True),
    ("ADDITIONAL_ITEMS_REMOVED", _tuple(S), _tuple(S, additionalItems=False), False),
    ("ADDITIONAL_ITEMS_EXTENDED", _tuple(S, additionalItems=S), _tuple(S), True),
    ("ADDITIONAL_ITEMS_NARROWED", _tuple(S), _tuple(S, additionalItems=S), False),
    ("ITEM_ADDED_TO_OPEN_CONTENT_MODEL", _tuple(S), _tuple(S, INT), False),
    ("ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", _tuple(S), _tuple(S, {}), True),
    (
        "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL",
        _tuple(S, additionalItems=False),
        _tuple(S, INT, additionalItems=False),
        True,
    ),
    ("ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", _tuple(S, INT), _tuple(S), True),
    (
        "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        _tuple(S, INT, additionalItems=False),
        _tuple(S, additionalItems=False),
        False,
    ),
    (
        "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        _tuple(S, False, additionalItems=False),
        _tuple(S, additionalItems=False),
        True,
    ),
    (
        "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _tuple(S, S, additionalItems=S),
        _tuple(S, additionalItems=S),
        True,
    ),
    (
        "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _tuple(S, INT, additionalItems=S),
        _tuple(S, additionalItems=S),
        False,
    ),
    (
        "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _tuple(S, additionalItems=S),
        _tuple(S, S, additionalItems=S),
        True,
    ),
    (
        "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _tuple(S, additionalItems=S),
        _tuple(S, INT, additionalItems=S),
        False,
    ),
    (
        "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",  # writer -> reader
        _tuple(S, INT, additionalItems=N),
        _tuple(S, additionalItems=N),
        True,
    ),
    (
        "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",  # writer -> reader
        _tuple(S, additionalItems=INT),
        _tuple(S, N, additionalItems=INT),
        True,
    ),
    # --- 2020-12: unevaluatedProperties / unevaluatedItems as the content model
    (
        "UNEVALUATED_PROPERTIES_ADDED",
        _o20({"a": S}, unevaluatedProperties=False),
        _o20({"a": S}),
        True,
    ),
    (
        "UNEVALUATED_PROPERTIES_REMOVED",
        _o20({"a": S}),
        _o20({"a": S}, unevaluatedProperties=False),
        False,
    ),
    (
        "UNEVALUATED_PROPERTIES_EXTENDED",
        _o20({"a": S}, unevaluatedProperties=S),
        _o20({"a": S}),
        True,
    ),
    (
        "UNEVALUATED_PROPERTIES_NARROWED",
        _o20({"a": S}),
        _o20({"a": S}, unevaluatedProperties=S),
        False,
    ),
    (
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        _o20({"a": S}, unevaluatedProperties=False),
        _o20({"a": S, "b": INT}, unevaluatedProperties=False),
        True,
    ),
    (
        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _o20({"a": S}, unevaluatedProperties=S),
        _o20({"a": S, "b": INT}, unevaluatedProperties=S),
        False,
    ),
    ("UNEVALUATED_ITEMS_ADDED", _p20(S, unevaluatedItems=False), _p20(S), True),
    ("UNEVALUATED_ITEMS_REMOVED", _p20(S), _p20(S, unevaluatedItems=False), False),
    ("UNEVALUATED_ITEMS_EXTENDED", _p20(S, unevaluatedItems=S), _p20(S), True),
    ("UNEVALUATED_ITEMS_NARROWED", _p20(S), _p20(S, unevaluatedItems=S), False),
    (
        "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _p20(S, unevaluatedItems=S),
        _p20(S, S, unevaluatedItems=S),
        True,
    ),
    (
        "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        _p20(S, INT, unevaluatedItems=S),
        _p20(S, unevaluatedItems=S),
        False,
    ),
    # --- EnumSchemaDiff, ConstSchemaDiff
    ("ENUM_ARRAY_EXTENDED", {"enum": ["A"]}, {"enum": ["A", "B"]}, True),
    ("ENUM_ARRAY_NARROWED", {"enum": ["A", "B"]}, {"enum": ["A"]}, False),
    ("ENUM_ARRAY_CHANGED", {"enum": ["A", "B"]}, {"enum": ["A", "C"]}, False),
    ("ENUM_ARRAY_CHANGED", {"const": "A"}, {"const": "B"}, False),
    # --- CombinedSchemaDiff and the combined special cases in SchemaDiff
    ("COMBINED_TYPE_EXTENDED", {"oneOf": [S, INT]}, {"anyOf": [S, INT]}, True),
    ("COMBINED_TYPE_CHANGED", {"anyOf": [S, INT]}, {"oneOf": [S, INT]}, False),
    ("COMBINED_TYPE_CHANGED", {"allOf": [S, _s(minLength=1)]}, {"oneOf": [S, INT]}, False),
    ("COMBINED_TYPE_EXTENDED", {"allOf": [S, _s(minLength=1)]}, {"anyOf": [S]}, True),
    ("SUM_TYPE_EXTENDED", {"oneOf": [S, INT]}, {"oneOf": [S, INT, {"type": "null"}]}, True),
    ("SUM_TYPE_EXTENDED", S, {"type": ["string", "null"]}, True),
    ("SUM_TYPE_NARROWED", {"oneOf": [S, INT, {"type": "null"}]}, {"oneOf": [S, INT]}, False),
    ("PRODUCT_TYPE_EXTENDED", {"allOf": [S]}, {"allOf": [S, _s(minLength=1)]}, False),
    ("PRODUCT_TYPE_NARROWED", {"allOf": [S, _s(minLength=1)]}, {"allOf": [S]}, True),
    ("PRODUCT_TYPE_NARROWED", {"type": "string", "enum": ["x"]}, S, True),
    (
        "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
        {"oneOf": [S, INT]},
        {"oneOf": [S, {"type": "boolean"}]},
        False,
    ),
    # --- NotSchemaDiff (the wrapped schemas compared the other way round)
    ("NOT_TYPE_NARROWED", {"not": {"type": ["string", "integer"]}}, {"not": S}, True),
    ("NOT_TYPE_EXTENDED", {"not": S}, {"not": {"type": ["string", "integer"]}}, False),
    ("NOT_TYPE_NARROWED", {"not": {}}, {"not": True}, True),
    ("NOT_TYPE_NARROWED", {"not": True}, {"not": {}}, True),
]

# Changes Confluent's diff does not look at: never a reason to refuse.
NOT_COMPARED: list[tuple[str, Any, Any]] = [
    ("propertyNames added", _o({"a": S}), _o({"a": S}, propertyNames={"maxLength": 3})),
    (
        "propertyNames changed",
        _o({"a": S}, propertyNames={"pattern": "^a"}),
        _o({"a": S}, propertyNames={"pattern": "^b"}),
    ),
    ("format added", S, _s(format="email")),
    ("contains changed", _a(contains=S), _a(contains=INT)),
    ("anything to true", INT, True),
    ("anything to empty", _o({"a": S}), {}),
    ("false to anything", False, S),
]


def _backward_problems(old: Any, new: Any) -> list[str]:
    return parse_schema("JSON", json.dumps(new)).incompatibilities(
        parse_schema("JSON", json.dumps(old))
    )


@pytest.mark.parametrize(
    ("rule", "old", "new", "compatible"),
    [
        pytest.param(rule, old, new, ok, id=f"{i:03d}-{rule}-{'ok' if ok else 'refused'}")
        for i, (rule, old, new, ok) in enumerate(RULES)
    ],
)
def test_rule(rule: str, old: Any, new: Any, compatible: bool) -> None:
    found = [kind for kind, _ in differences(old, new, Doc(old, {}), Doc(new, {}))]
    assert rule in found, found
    problems = _backward_problems(old, new)
    assert (not problems) is compatible, problems
    if not compatible:
        assert any(f'"{kind}"' in " ".join(problems) for kind in found)


@pytest.mark.parametrize(
    ("old", "new"), [pytest.param(old, new, id=name) for name, old, new in NOT_COMPARED]
)
def test_changes_confluent_does_not_compare_are_accepted(old: Any, new: Any) -> None:
    assert _backward_problems(old, new) == []


def test_every_confluent_difference_type_has_a_case() -> None:
    """Every Difference type Confluent's diff produces is covered above, but the deprecated
    PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL and the reserved-property types (which need schema
    metadata shoal does not keep)."""
    covered = {rule for rule, *_ in RULES}
    assert len(covered) >= 118
    assert covered >= COMPATIBLE_CHANGES


def test_enum_only_schema_changing_type_is_refused_in_a_subject() -> None:
    """The failure this rule set prevents: a producer switching an enum field to integers."""
    from shoal.registry import MemorySchemaLog, RegistryService
    from shoal.registry.errors import RegistryError
    from shoal.registry.service import SchemaRequest

    service = RegistryService()
    service.open(MemorySchemaLog())
    old = json.dumps(_o({"status": {"enum": ["A", "B"]}}))
    new = json.dumps(_o({"status": INT}))
    service.register("s", SchemaRequest(old, "JSON"))
    with pytest.raises(RegistryError) as excinfo:
        service.register("s", SchemaRequest(new, "JSON"))
    assert excinfo.value.error_code == 409
    assert "TYPE_CHANGED" in excinfo.value.message


def _linked_list(value: Any) -> dict[str, Any]:
    node = {"type": "object", "properties": {"next": {"$ref": "#/definitions/node"}, "v": value}}
    return {"definitions": {"node": node}, "$ref": "#/definitions/node"}


def test_recursive_schemas_are_judged() -> None:
    assert _backward_problems(_linked_list(S), _linked_list(S)) == []
    assert _backward_problems(_linked_list(INT), _linked_list(N)) == []
    problems = _backward_problems(_linked_list(S), _linked_list(INT))
    assert problems and "TYPE_CHANGED" in problems[0]


def test_branching_references_are_compared_once_per_pair() -> None:
    """Twenty levels of two-branch unions, each branch referring to the next level: 4^20 paths
    through the schema, but few distinct pairs of nodes (a cap on the work a schema can ask)."""
    depth = 20
    defs: dict[str, Any] = {f"d{depth}": S}
    for i in range(depth):
        nxt = {"$ref": f"#/definitions/d{i + 1}"}
        defs[f"d{i}"] = {"anyOf": [nxt, {"type": "object", "properties": {"x": nxt}}]}
    old = {"definitions": defs, "$ref": "#/definitions/d0"}
    new = json.loads(json.dumps(old))
    assert _backward_problems(old, new) == []
    new["definitions"][f"d{depth}"] = INT
    assert _backward_problems(old, new) != []
