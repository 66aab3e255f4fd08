"""The schema model Confluent's JSON Schema diff works on: nodes classified as its JSON Schema
library (everit) loads them, the keywords that decide a node's kind, and the comparison's
context (differences found, pairs in progress, results remembered). See
:mod:`shoal.registry.formats.jsondiff`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from shoal.invariant import invariant

PairKey = tuple[tuple[int, str, str, str], tuple[int, str, str, str]]
MAX_DEPTH: Final = 64
"""Recursive schemas ($ref cycles through type lists) are cut at this depth, as compatible."""
REF_HOPS_MAX: Final = 64
"""A $ref chain longer than this is a cycle of references to references: treated as ``{}``."""

# Confluent's SchemaDiff.COMPATIBLE_CHANGES_STRICT: every other change is incompatible.
COMPATIBLE_CHANGES: Final = frozenset(
    {
        "ID_CHANGED",
        "DESCRIPTION_CHANGED",
        "TITLE_CHANGED",
        "DEFAULT_CHANGED",
        "SCHEMA_REMOVED",
        "TYPE_EXTENDED",
        "MAX_LENGTH_INCREASED",
        "MAX_LENGTH_REMOVED",
        "MIN_LENGTH_DECREASED",
        "MIN_LENGTH_REMOVED",
        "PATTERN_REMOVED",
        "MAXIMUM_INCREASED",
        "MAXIMUM_REMOVED",
        "MINIMUM_DECREASED",
        "MINIMUM_REMOVED",
        "EXCLUSIVE_MAXIMUM_INCREASED",
        "EXCLUSIVE_MAXIMUM_REMOVED",
        "EXCLUSIVE_MINIMUM_DECREASED",
        "EXCLUSIVE_MINIMUM_REMOVED",
        "MULTIPLE_OF_REDUCED",
        "MULTIPLE_OF_REMOVED",
        "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
        "REQUIRED_ATTRIBUTE_REMOVED",
        "DEPENDENCY_ARRAY_NARROWED",
        "DEPENDENCY_ARRAY_REMOVED",
        "DEPENDENCY_SCHEMA_REMOVED",
        "MAX_PROPERTIES_INCREASED",
        "MAX_PROPERTIES_REMOVED",
        "MIN_PROPERTIES_DECREASED",
        "MIN_PROPERTIES_REMOVED",
        "ADDITIONAL_PROPERTIES_ADDED",
        "ADDITIONAL_PROPERTIES_EXTENDED",
        "UNEVALUATED_PROPERTIES_ADDED",
        "UNEVALUATED_PROPERTIES_EXTENDED",
        "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "MAX_ITEMS_INCREASED",
        "MAX_ITEMS_REMOVED",
        "MIN_ITEMS_DECREASED",
        "MIN_ITEMS_REMOVED",
        "MAX_CONTAINS_INCREASED",
        "MAX_CONTAINS_REMOVED",
        "MIN_CONTAINS_DECREASED",
        "MIN_CONTAINS_REMOVED",
        "UNIQUE_ITEMS_REMOVED",
        "ADDITIONAL_ITEMS_ADDED",
        "ADDITIONAL_ITEMS_EXTENDED",
        "UNEVALUATED_ITEMS_ADDED",
        "UNEVALUATED_ITEMS_EXTENDED",
        "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL",
        "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ENUM_ARRAY_EXTENDED",
        "COMBINED_TYPE_EXTENDED",
        "PRODUCT_TYPE_NARROWED",
        "SUM_TYPE_EXTENDED",
        "NOT_TYPE_NARROWED",
    }
)

# The keywords that make everit load a node as a schema of one type when "type" is absent.
SNIFFED_KEYWORDS: Final = (
    (
        "object",
        (
            "properties",
            "required",
            "minProperties",
            "maxProperties",
            "dependencies",
            "dependentRequired",
            "dependentSchemas",
            "patternProperties",
            "additionalProperties",
            "propertyNames",
        ),
    ),
    (
        "array",
        (
            "items",
            "prefixItems",
            "additionalItems",
            "minItems",
            "maxItems",
            "uniqueItems",
            "contains",
        ),
    ),
    ("number", ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")),
    ("string", ("minLength", "maxLength", "pattern", "format")),
)
TYPE_KINDS: Final = {
    "string": "string",
    "integer": "number",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
    "object": "object",
    "array": "array",
}
COMBINERS: Final = ("allOf", "anyOf", "oneOf")


@dataclass(frozen=True)
class Doc:
    """Where a node lives, so a ``$ref`` in it can be followed: its document's root, and the
    documents its references name."""

    root: Any
    references: Mapping[str, Any]


@dataclass(frozen=True)
class Schema:
    """A node as everit loads it: ``kind`` is its class (empty, true, false, string, number,
    boolean, null, object, array, enum, const, not, combined)."""

    kind: str
    node: Any
    doc: Doc
    criterion: str = ""
    parts: tuple[Any, ...] = ()  # combined: raw nodes (classified on demand) or Schemas
    integer: bool = False
    source: str = ""  # which keyword(s) of ``node`` made it, when one node makes several

    @property
    def key(self) -> tuple[int, str, str, str]:
        """Identifies the schema while the documents live: nodes are never copied."""
        return (id(self.node), self.kind, self.criterion, self.source)

    def subschemas(self) -> list[Schema]:
        return [p if isinstance(p, Schema) else classify(p, self.doc) for p in self.parts]


def walk_pointer(root: Any, pointer: str) -> Any:
    node = root
    for raw in pointer.strip("/").split("/") if pointer.strip("/") else ():
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return {}  # a dangling pointer constrains nothing that can be compared
    return node


def resolve(node: Any, doc: Doc) -> tuple[Any, Doc]:
    """Follow ``$ref`` (a pointer in the same document, or a reference's name with an optional
    pointer). As in draft 7, keywords beside ``$ref`` are ignored."""
    for _ in range(REF_HOPS_MAX):
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            return node, doc
        target, _, pointer = node["$ref"].partition("#")
        if target:
            if target not in doc.references:
                return {}, doc  # unresolvable: nothing can be concluded, treat as open
            doc = Doc(doc.references[target], doc.references)
        node = walk_pointer(doc.root, pointer)
    return {}, doc


def classify(node: Any, doc: Doc) -> Schema:
    node, doc = resolve(node, doc)
    if node is True:
        return Schema("true", node, doc)
    if node is False:
        return Schema("false", node, doc)
    if not isinstance(node, dict):
        return Schema("empty", {}, doc)
    found: list[Schema] = []
    if "enum" in node:
        found.append(Schema("enum", node, doc))
    for combiner in COMBINERS:
        if isinstance(node.get(combiner), list):
            found.append(
                Schema("combined", node, doc, combiner, tuple(node[combiner]), source=combiner)
            )
    if "not" in node:
        found.append(Schema("not", node, doc))
    if "const" in node:
        found.append(Schema("const", node, doc))
    found += _typed(node, doc)
    if not found:
        return Schema("empty", node, doc)
    if len(found) == 1:
        return found[0]
    return Schema("combined", node, doc, "allOf", tuple(found), source="keywords")


def _typed(node: dict[str, Any], doc: Doc) -> list[Schema]:
    declared = node.get("type")
    if isinstance(declared, str):
        return [_of_type(declared, node, doc)]
    if isinstance(declared, list):
        # One typed schema per listed type, each with the node's other keywords (a typed
        # schema reads only its own type's keywords, so it can share the node).
        typed = [_of_type(t, node, doc) for t in dict.fromkeys(declared) if isinstance(t, str)]
        return [Schema("combined", node, doc, "anyOf", tuple(typed), source="type")]
    return [
        Schema(kind, node, doc)
        for kind, keywords in SNIFFED_KEYWORDS
        if any(k in node for k in keywords)
    ]


def _of_type(name: str, node: dict[str, Any], doc: Doc) -> Schema:
    kind = TYPE_KINDS.get(name, "empty")
    return Schema(kind, node, doc, integer=name == "integer", source=f"type:{name}")


@dataclass
class Context:
    """The differences found so far, and the pairs being compared (a pair met again inside
    itself is a recursive schema: assumed compatible, as Confluent does)."""

    differences: list[tuple[str, str]] = field(default_factory=list)
    active: set[PairKey] = field(default_factory=set)
    depth: int = 0
    # Shared by a comparison's sub-contexts: differences per pair (paths relative to the
    # pair), so a schema referenced from many places is compared once; and how many times a
    # cycle or the depth limit cut a comparison short (a result computed under such a cut
    # depends on where it was met, and is not remembered).
    memo: dict[PairKey, tuple[Schema, Schema, list[tuple[str, str]]]] = field(default_factory=dict)
    cuts: list[int] = field(default_factory=lambda: [0])
    # The comparison itself (jsondiff.compare), so the object and array rules can recurse.
    engine: Callable[[Context, Schema | None, Schema | None, str], None] | None = None

    def sub(self) -> Context:
        return Context([], self.active, self.depth, self.memo, self.cuts, self.engine)

    def compare(self, original: Schema | None, update: Schema | None, path: str) -> None:
        invariant(self.engine is not None, "a Context compares through its engine")
        if self.engine is not None:
            self.engine(self, original, update, path)

    def add(self, kind: str, path: str) -> None:
        self.differences.append((kind, path))

    def merge(self, other: Context) -> None:
        self.differences += other.differences

    @property
    def compatible(self) -> bool:
        return all(kind in COMPATIBLE_CHANGES for kind, _ in self.differences)


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def limit(ctx: Context, path: str, name: str, old: float | None, new: float | None) -> None:
    """A numeric keyword's change, named as Confluent names it: ADDED, REMOVED, INCREASED or
    DECREASED (``name`` is the keyword in Confluent's upper-case form)."""
    if old == new:
        return
    if old is None:
        ctx.add(f"{name}_ADDED", path)
    elif new is None:
        ctx.add(f"{name}_REMOVED", path)
    elif old < new:
        ctx.add(f"{name}_INCREASED", path)
    else:
        ctx.add(f"{name}_DECREASED", path)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
