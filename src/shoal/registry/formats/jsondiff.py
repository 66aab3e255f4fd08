"""JSON Schema compatibility as Confluent's registry judges it: a structural diff of the old
schema (the writer, ``original``) against the new one (the reader, ``update``), each change
named by one of Confluent's ``Difference.Type`` names; the new schema is compatible when every
change is in :data:`COMPATIBLE_CHANGES` (Confluent's STRICT set, its default policy).

Confluent compares schemas as its JSON Schema library (everit) loads them, so a node is first
classified the way that loader does (:func:`classify`): ``true``, ``false``, ``{}``, a typed
schema (``type``, or the keywords of one type without ``type``), ``enum``, ``const``, ``not``,
and combined schemas (``allOf``/``anyOf``/``oneOf``; a list of types is an ``anyOf`` of typed
schemas; several of the above side by side are a synthetic ``allOf``). Two nodes of different
kinds are a TYPE_CHANGED, which is why an ``enum``-only schema that becomes ``{"type":
"integer"}`` is refused, and why keywords Confluent does not compare (``format``,
``propertyNames``, ``contains``) never refuse a change.

Draft 2019-09/2020-12 keywords are mapped onto their draft-7 counterparts (``prefixItems``
with ``items``, ``dependentRequired``, ``dependentSchemas``); ``unevaluated*`` are not compared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

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


def _walk_pointer(root: Any, pointer: str) -> Any:
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


def _resolve(node: Any, doc: Doc) -> tuple[Any, Doc]:
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
        node = _walk_pointer(doc.root, pointer)
    return {}, doc


def classify(node: Any, doc: Doc) -> Schema:
    node, doc = _resolve(node, doc)
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

    def sub(self) -> Context:
        return Context([], self.active, self.depth, self.memo, self.cuts)

    def add(self, kind: str, path: str) -> None:
        self.differences.append((kind, path))

    def merge(self, other: Context) -> None:
        self.differences += other.differences

    @property
    def compatible(self) -> bool:
        return all(kind in COMPATIBLE_CHANGES for kind, _ in self.differences)


def differences(
    original: Any, update: Any, original_doc: Doc, update_doc: Doc
) -> list[tuple[str, str]]:
    """Every change (Confluent's type name, path) from ``original`` to ``update``."""
    ctx = Context()
    compare(ctx, classify(original, original_doc), classify(update, update_doc), "#")
    return ctx.differences


def compare(ctx: Context, original: Schema | None, update: Schema | None, path: str) -> None:
    if original is None and update is None:
        return
    if original is None:
        ctx.add("SCHEMA_ADDED", path)
        return
    if update is None:
        ctx.add("SCHEMA_REMOVED", path)
        return
    key = (original.key, update.key)
    remembered = ctx.memo.get(key)
    if remembered is not None:
        for kind, relative in remembered[2]:
            ctx.add(kind, path + relative)
        return
    if key in ctx.active or ctx.depth > MAX_DEPTH:
        ctx.cuts[0] += 1
        return
    ctx.active.add(key)
    ctx.depth += 1
    cuts_before = ctx.cuts[0]
    pair = Context([], ctx.active, ctx.depth, ctx.memo, ctx.cuts)
    try:
        _compare_types(pair, original, update, "")
    finally:
        ctx.depth -= 1
        ctx.active.discard(key)
    if ctx.cuts[0] == cuts_before:
        # The schemas are kept in the entry so their nodes' ids cannot be reused meanwhile.
        ctx.memo[key] = (original, update, pair.differences)
    for kind, relative in pair.differences:
        ctx.add(kind, path + relative)


def _first_compatible(
    ctx: Context, pairs: Iterator[tuple[Schema, Schema]], path: str
) -> Context | None:
    for o, u in pairs:
        sub = ctx.sub()
        compare(sub, o, u, path)
        if sub.compatible:
            return sub
    return None


def _compare_types(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    if original.kind != "combined" and update.kind == "combined":
        parts = update.subschemas()
        if len(parts) == 1 or update.criterion in ("anyOf", "oneOf"):
            match = _first_compatible(ctx, ((original, p) for p in parts), path)
            if match is not None:
                ctx.merge(match)
                if len(parts) > 1:
                    ctx.add("SUM_TYPE_EXTENDED", path)
                return
    elif original.kind == "combined" and update.kind != "combined":
        parts = original.subschemas()
        if len(parts) == 1 or original.criterion == "allOf":
            match = _first_compatible(ctx, ((p, update) for p in parts), path)
            if match is not None:
                ctx.merge(match)
                if len(parts) > 1:
                    ctx.add("PRODUCT_TYPE_NARROWED", path)
                return
    if original.kind != update.kind:
        if original.kind == "false" or update.kind in ("empty", "true"):
            return  # the writer sent nothing, or the reader accepts anything
        if _connect_bytes(original) and _connect_bytes(update):
            return  # Kafka Connect's bytes, written as either type
        ctx.add("TYPE_CHANGED", path)
        return
    if isinstance(original.node, dict) and isinstance(update.node, dict):
        for keywords, change in ANNOTATIONS:
            if _annotation(original.node, keywords) != _annotation(update.node, keywords):
                ctx.add(change, path)  # all compatible: they do not constrain instances
    DIFFS.get(original.kind, _no_diff)(ctx, original, update, path)


ANNOTATIONS: Final = (
    (("$id", "id"), "ID_CHANGED"),
    (("title",), "TITLE_CHANGED"),
    (("description",), "DESCRIPTION_CHANGED"),
    (("default",), "DEFAULT_CHANGED"),
)


def _annotation(node: dict[str, Any], keywords: tuple[str, ...]) -> str | None:
    for keyword in keywords:
        if keyword in node:
            return _canonical(node[keyword])
    return None


def _connect_bytes(schema: Schema) -> bool:
    return isinstance(schema.node, dict) and schema.node.get("connect.type") == "bytes"


def _no_diff(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _limit(ctx: Context, path: str, name: str, old: float | None, new: float | None) -> None:
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


def _compare_string(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    o, u = original.node, update.node
    for keyword, name in (("maxLength", "MAX_LENGTH"), ("minLength", "MIN_LENGTH")):
        _limit(ctx, f"{path}/{keyword}", name, _number(o.get(keyword)), _number(u.get(keyword)))
    o_pattern, u_pattern = o.get("pattern"), u.get("pattern")
    if o_pattern is None and u_pattern is not None:
        ctx.add("PATTERN_ADDED", f"{path}/pattern")
    elif o_pattern is not None and u_pattern is None:
        ctx.add("PATTERN_REMOVED", f"{path}/pattern")
    elif o_pattern != u_pattern:
        ctx.add("PATTERN_CHANGED", f"{path}/pattern")


def _compare_number(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    o, u = original.node, update.node
    for keyword, name in (
        ("maximum", "MAXIMUM"),
        ("minimum", "MINIMUM"),
        ("exclusiveMaximum", "EXCLUSIVE_MAXIMUM"),
        ("exclusiveMinimum", "EXCLUSIVE_MINIMUM"),
    ):
        _limit(ctx, f"{path}/{keyword}", name, _number(o.get(keyword)), _number(u.get(keyword)))
    o_multiple, u_multiple = _number(o.get("multipleOf")), _number(u.get("multipleOf"))
    where = f"{path}/multipleOf"
    if o_multiple != u_multiple:
        if o_multiple is None:
            ctx.add("MULTIPLE_OF_ADDED", where)
        elif u_multiple is None:
            ctx.add("MULTIPLE_OF_REMOVED", where)
        elif o_multiple != 0 and _divides(o_multiple, u_multiple):
            ctx.add("MULTIPLE_OF_EXPANDED", where)
        elif u_multiple != 0 and _divides(u_multiple, o_multiple):
            ctx.add("MULTIPLE_OF_REDUCED", where)
        else:
            ctx.add("MULTIPLE_OF_CHANGED", where)
    if original.integer != update.integer:
        ctx.add("TYPE_EXTENDED" if original.integer else "TYPE_NARROWED", path)


def _divides(divisor: float, value: float) -> bool:
    quotient = value / divisor
    return abs(quotient - round(quotient)) < 1e-9


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _compare_enum(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    o_values = {_canonical(v) for v in original.node.get("enum") or ()}
    u_values = {_canonical(v) for v in update.node.get("enum") or ()}
    if o_values == u_values:
        return
    if u_values >= o_values:
        ctx.add("ENUM_ARRAY_EXTENDED", f"{path}/enum")
    elif o_values >= u_values:
        ctx.add("ENUM_ARRAY_NARROWED", f"{path}/enum")
    else:
        ctx.add("ENUM_ARRAY_CHANGED", f"{path}/enum")


def _compare_const(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    if _canonical(original.node.get("const")) != _canonical(update.node.get("const")):
        ctx.add("ENUM_ARRAY_CHANGED", f"{path}/const")


def _compare_not(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    # Reversed: what the reader must not match may only shrink.
    sub = ctx.sub()
    compare(
        sub,
        classify(update.node["not"], update.doc),
        classify(original.node["not"], original.doc),
        f"{path}/not",
    )
    ctx.add("NOT_TYPE_NARROWED" if sub.compatible else "NOT_TYPE_EXTENDED", f"{path}/not")


def _compare_combined(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    if not _compare_criteria(ctx, original, update, path):
        return
    o_parts = _distinct(original.subschemas())
    u_parts = _distinct(update.subschemas())
    if len(o_parts) < len(u_parts):
        extended = "PRODUCT_TYPE_EXTENDED" if update.criterion == "allOf" else "SUM_TYPE_EXTENDED"
        ctx.add(extended, path)
    elif len(o_parts) > len(u_parts):
        narrowed = "SUM_TYPE_NARROWED" if original.criterion != "allOf" else "PRODUCT_TYPE_NARROWED"
        ctx.add(narrowed, path)
    # Which old branch can become which new one, then a matching as large as possible: each
    # old branch needs its own new branch (or the other way round, whichever side is smaller).
    edges: dict[int, dict[int, Context]] = {}
    for i, o in enumerate(o_parts):
        for j, u in enumerate(u_parts):
            sub = ctx.sub()
            compare(sub, o, u, f"{path}/{original.criterion}/{i}")
            if sub.compatible:
                edges.setdefault(i, {})[j] = sub
    matching = _maximum_matching(edges)
    for i, j in sorted(matching.items()):
        ctx.merge(edges[i][j])
    if len(matching) < min(len(o_parts), len(u_parts)):
        ctx.add("COMBINED_TYPE_SUBSCHEMAS_CHANGED", path)


def _compare_criteria(ctx: Context, original: Schema, update: Schema, path: str) -> bool:
    """False when the combiners differ in a way no branch matching can make compatible."""
    o_crit, u_crit = original.criterion, update.criterion
    if o_crit == u_crit:
        return True
    o_single, u_single = len(original.parts) == 1, len(update.parts) == 1
    if (
        u_crit == "anyOf"
        or (o_single and u_single)
        or (o_single and u_crit == "oneOf")
        or (u_single and o_crit == "allOf")
    ):
        ctx.add("COMBINED_TYPE_EXTENDED", path)
        return True
    ctx.add("COMBINED_TYPE_CHANGED", path)
    return False


def _distinct(parts: list[Schema]) -> list[Schema]:
    seen: dict[tuple[str, str, str], Schema] = {}
    for part in parts:
        seen.setdefault((part.kind, part.criterion, _canonical(part.node)), part)
    return list(seen.values())


def _maximum_matching(edges: dict[int, dict[int, Context]]) -> dict[int, int]:
    """A maximum bipartite matching (Kuhn's augmenting paths): old branch -> new branch."""
    owner: dict[int, int] = {}  # new branch -> old branch

    def augment(i: int, visited: set[int]) -> bool:
        for j in edges.get(i, {}):
            if j in visited:
                continue
            visited.add(j)
            if j not in owner or augment(owner[j], visited):
                owner[j] = i
                return True
        return False

    for i in edges:
        augment(i, set())
    return {i: j for j, i in owner.items()}


# ----------------------------------------------------------------- objects


def _props(schema: Schema) -> dict[str, Any]:
    props = schema.node.get("properties")
    return props if isinstance(props, dict) else {}


def _required(schema: Schema) -> set[str]:
    required = schema.node.get("required")
    return {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()


def _extra(schema: Schema, keyword: str) -> tuple[bool, Schema | None]:
    """(whether extra properties/items are allowed, the schema they must match if one)."""
    value = schema.node.get(keyword, True)
    if value is False:
        return False, None
    if isinstance(value, dict):
        return True, classify(value, schema.doc)
    return True, None


def _pattern_schemas(schema: Schema) -> dict[str, Any]:
    patterns = schema.node.get("patternProperties")
    return patterns if isinstance(patterns, dict) else {}


def _object_open(schema: Schema) -> bool:
    permits, extra = _extra(schema, "additionalProperties")
    return permits and extra is None and not _pattern_schemas(schema)


def _object_partial(schema: Schema, name: str) -> Schema | None:
    for pattern, node in _pattern_schemas(schema).items():
        try:
            if re.search(pattern, name):
                return classify(node, schema.doc)
        except re.error:
            continue
    return _extra(schema, "additionalProperties")[1]


def _has_default(node: Any, doc: Doc) -> bool:
    resolved, _ = _resolve(node, doc)
    return isinstance(resolved, dict) and "default" in resolved


def _compare_object(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    o_props, u_props = _props(original), _props(update)
    o_req, u_req = _required(original), _required(update)
    for name in o_props:
        if name in u_props:
            where = f"{path}/required/{name}"
            if name in o_req and name not in u_req:
                ctx.add("REQUIRED_ATTRIBUTE_REMOVED", where)
            elif name not in o_req and name in u_req:
                with_default = _has_default(u_props[name], update.doc)
                ctx.add(
                    "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED"
                    if with_default
                    else "REQUIRED_ATTRIBUTE_ADDED",
                    where,
                )
    for name in sorted(set(o_props) | set(u_props)):
        where = f"{path}/properties/{name}"
        if name not in u_props:
            _property_removed(ctx, original, update, name, where)
        elif name not in o_props:
            _property_added(ctx, original, update, name, where)
        else:
            compare(
                ctx,
                classify(o_props[name], original.doc),
                classify(u_props[name], update.doc),
                where,
            )
    _compare_dependencies(ctx, original, update, f"{path}/dependencies")
    _compare_extra(ctx, original, update, "additionalProperties", "ADDITIONAL_PROPERTIES", path)
    for keyword, name in (("maxProperties", "MAX_PROPERTIES"), ("minProperties", "MIN_PROPERTIES")):
        _limit(
            ctx,
            f"{path}/{keyword}",
            name,
            _number(original.node.get(keyword)),
            _number(update.node.get(keyword)),
        )


def _property_removed(
    ctx: Context, original: Schema, update: Schema, name: str, where: str
) -> None:
    # Only the reader's content model matters: it must still accept what the writer sent.
    if _object_open(update):
        ctx.add("PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", where)
        return
    old = classify(_props(original)[name], original.doc)
    partial = _object_partial(update, name)
    if partial is not None:
        sub = ctx.sub()
        compare(sub, old, partial, where)
        ctx.merge(sub)
        ctx.add(
            "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
            if sub.compatible
            else "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            where,
        )
    elif old.kind == "false":
        ctx.add("PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", where)
    else:
        ctx.add("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", where)


def _property_added(ctx: Context, original: Schema, update: Schema, name: str, where: str) -> None:
    # Only the writer's content model matters: an open writer may already send any value.
    new_node = _props(update)[name]
    new = classify(new_node, update.doc)
    required = name in _required(update)
    with_default = _has_default(new_node, update.doc)
    if _object_open(original):
        if new.kind == "empty":
            ctx.add("PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", where)
        elif required and with_default:
            ctx.add("REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL", where)
        elif required:
            ctx.add("REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", where)
        else:
            ctx.add("OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", where)
        return
    partial = _object_partial(original, name)
    if partial is not None:
        sub = ctx.sub()
        compare(sub, partial, new, where)
        ctx.merge(sub)
        ctx.add(
            "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
            if sub.compatible
            else "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            where,
        )
    if required and with_default:
        ctx.add("REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL", where)
    elif required:
        ctx.add("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", where)
    else:
        ctx.add("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", where)


def _dependencies(schema: Schema) -> tuple[dict[str, set[str]], dict[str, Any]]:
    """(property dependencies, schema dependencies), from draft 7's ``dependencies`` and
    2019-09's ``dependentRequired`` / ``dependentSchemas``."""
    arrays: dict[str, set[str]] = {}
    schemas: dict[str, Any] = {}
    node = schema.node
    for keyword in ("dependencies", "dependentRequired", "dependentSchemas"):
        value = node.get(keyword)
        if not isinstance(value, dict):
            continue
        for name, dep in value.items():
            if isinstance(dep, list):
                arrays[name] = {d for d in dep if isinstance(d, str)}
            else:
                schemas[name] = dep
    return arrays, schemas


def _compare_dependencies(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    o_arrays, o_schemas = _dependencies(original)
    u_arrays, u_schemas = _dependencies(update)
    for name in sorted(set(o_arrays) | set(u_arrays)):
        where = f"{path}/{name}"
        old, new = o_arrays.get(name), u_arrays.get(name)
        if new is None:
            ctx.add("DEPENDENCY_ARRAY_REMOVED", where)
        elif old is None:
            ctx.add("DEPENDENCY_ARRAY_ADDED", where)
        elif old != new:
            if new >= old:
                ctx.add("DEPENDENCY_ARRAY_EXTENDED", where)
            elif old >= new:
                ctx.add("DEPENDENCY_ARRAY_NARROWED", where)
            else:
                ctx.add("DEPENDENCY_ARRAY_CHANGED", where)
    for name in sorted(set(o_schemas) | set(u_schemas)):
        where = f"{path}/{name}"
        if name not in u_schemas:
            ctx.add("DEPENDENCY_SCHEMA_REMOVED", where)
        elif name not in o_schemas:
            ctx.add("DEPENDENCY_SCHEMA_ADDED", where)
        else:
            compare(
                ctx,
                classify(o_schemas[name], original.doc),
                classify(u_schemas[name], update.doc),
                where,
            )


def _compare_extra(
    ctx: Context, original: Schema, update: Schema, keyword: str, name: str, path: str
) -> None:
    """``additionalProperties`` / ``additionalItems``: allowed or not, and their schema."""
    where = f"{path}/{keyword}"
    o_permits, o_schema = _extra(original, keyword)
    u_permits, u_schema = _extra(update, keyword)
    if o_permits != u_permits:
        ctx.add(f"{name}_ADDED" if u_permits else f"{name}_REMOVED", where)
    elif o_schema is None and u_schema is not None:
        ctx.add(f"{name}_NARROWED", where)
    elif u_schema is None and o_schema is not None:
        ctx.add(f"{name}_EXTENDED", where)
    else:
        compare(ctx, o_schema, u_schema, where)


# ----------------------------------------------------------------- arrays


def _items(schema: Schema) -> tuple[Schema | None, list[Any], Schema]:
    """(the schema of every item, the per-position item schemas, the schema whose
    ``additionalItems`` applies), mapping 2020-12's ``prefixItems``/``items`` onto draft 7's
    ``items`` (list)/``additionalItems``."""
    node = schema.node
    if isinstance(node.get("prefixItems"), list):
        extra = {"additionalItems": node["items"]} if "items" in node else {}
        return None, list(node["prefixItems"]), Schema("array", extra, schema.doc)
    items = node.get("items")
    if isinstance(items, list):
        return None, items, schema
    every = classify(items, schema.doc) if isinstance(items, dict | bool) else None
    return every, [], schema


def _array_open(holder: Schema) -> bool:
    permits, extra = _extra(holder, "additionalItems")
    return permits and extra is None


def _compare_array(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    o_every, o_tuple, o_holder = _items(original)
    u_every, u_tuple, u_holder = _items(update)
    compare(ctx, o_every, u_every, f"{path}/items")
    for index in range(max(len(o_tuple), len(u_tuple))):
        where = f"{path}/items/{index}"
        if index < len(o_tuple) and index < len(u_tuple):
            compare(
                ctx,
                classify(o_tuple[index], original.doc),
                classify(u_tuple[index], update.doc),
                where,
            )
        elif index < len(o_tuple):
            _item_removed(ctx, classify(o_tuple[index], original.doc), u_holder, where)
        else:
            _item_added(ctx, o_holder, classify(u_tuple[index], update.doc), where)
    _compare_extra(ctx, o_holder, u_holder, "additionalItems", "ADDITIONAL_ITEMS", path)
    for keyword, name in (
        ("maxItems", "MAX_ITEMS"),
        ("minItems", "MIN_ITEMS"),
        ("maxContains", "MAX_CONTAINS"),
        ("minContains", "MIN_CONTAINS"),
    ):
        _limit(
            ctx,
            f"{path}/{keyword}",
            name,
            _number(original.node.get(keyword)),
            _number(update.node.get(keyword)),
        )
    o_unique = original.node.get("uniqueItems") is True
    u_unique = update.node.get("uniqueItems") is True
    if o_unique != u_unique:
        ctx.add("UNIQUE_ITEMS_REMOVED" if o_unique else "UNIQUE_ITEMS_ADDED", f"{path}/uniqueItems")


def _item_removed(ctx: Context, old: Schema, u_holder: Schema, where: str) -> None:
    if _array_open(u_holder):
        ctx.add("ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", where)
        return
    partial = _extra(u_holder, "additionalItems")[1]
    if partial is not None:
        sub = ctx.sub()
        compare(sub, old, partial, where)
        ctx.merge(sub)
        ctx.add(
            "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
            if sub.compatible
            else "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            where,
        )
    elif old.kind == "false":
        ctx.add("ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", where)
    else:
        ctx.add("ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", where)


def _item_added(ctx: Context, o_holder: Schema, new: Schema, where: str) -> None:
    if _array_open(o_holder):
        ctx.add(
            "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
            if new.kind == "empty"
            else "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
            where,
        )
        return
    partial = _extra(o_holder, "additionalItems")[1]
    if partial is not None:
        sub = ctx.sub()
        compare(sub, partial, new, where)
        ctx.merge(sub)
        ctx.add(
            "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
            if sub.compatible
            else "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            where,
        )
    else:
        ctx.add("ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", where)


DIFFS: Final[dict[str, Callable[[Context, Schema, Schema, str], None]]] = {
    "string": _compare_string,
    "number": _compare_number,
    "enum": _compare_enum,
    "const": _compare_const,
    "not": _compare_not,
    "combined": _compare_combined,
    "object": _compare_object,
    "array": _compare_array,
}
