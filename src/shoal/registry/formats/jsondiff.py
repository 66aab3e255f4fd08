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
with ``items``, ``dependentRequired``, ``dependentSchemas``); ``unevaluated*`` take part in the
content model as in Confluent's diff. Not produced: the reserved-property types (they need the
schema metadata Confluent keeps beside a schema, which shoal does not have).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from shoal.registry.formats import jsondiff_content as content
from shoal.registry.formats.jsondiff_model import (
    COMPATIBLE_CHANGES,
    MAX_DEPTH,
    Context,
    Doc,
    Schema,
    canonical,
    classify,
    limit,
    number,
)

__all__ = ["COMPATIBLE_CHANGES", "Doc", "differences"]


def differences(
    original: Any, update: Any, original_doc: Doc, update_doc: Doc
) -> list[tuple[str, str]]:
    """Every change (Confluent's type name, path) from ``original`` to ``update``."""
    ctx = Context(engine=compare)
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
    pair = Context([], ctx.active, ctx.depth, ctx.memo, ctx.cuts, ctx.engine)
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
            return canonical(node[keyword])
    return None


def _connect_bytes(schema: Schema) -> bool:
    return isinstance(schema.node, dict) and schema.node.get("connect.type") == "bytes"


def _no_diff(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    return None


def _compare_string(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    o, u = original.node, update.node
    for keyword, name in (("maxLength", "MAX_LENGTH"), ("minLength", "MIN_LENGTH")):
        limit(ctx, f"{path}/{keyword}", name, number(o.get(keyword)), number(u.get(keyword)))
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
        limit(ctx, f"{path}/{keyword}", name, number(o.get(keyword)), number(u.get(keyword)))
    o_multiple, u_multiple = number(o.get("multipleOf")), number(u.get("multipleOf"))
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


def _compare_enum(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    o_values = {canonical(v) for v in original.node.get("enum") or ()}
    u_values = {canonical(v) for v in update.node.get("enum") or ()}
    if o_values == u_values:
        return
    if u_values >= o_values:
        ctx.add("ENUM_ARRAY_EXTENDED", f"{path}/enum")
    elif o_values >= u_values:
        ctx.add("ENUM_ARRAY_NARROWED", f"{path}/enum")
    else:
        ctx.add("ENUM_ARRAY_CHANGED", f"{path}/enum")


def _compare_const(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    if canonical(original.node.get("const")) != canonical(update.node.get("const")):
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
        seen.setdefault((part.kind, part.criterion, canonical(part.node)), part)
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


DIFFS: Final[dict[str, Callable[[Context, Schema, Schema, str], None]]] = {
    "string": _compare_string,
    "number": _compare_number,
    "enum": _compare_enum,
    "const": _compare_const,
    "not": _compare_not,
    "combined": _compare_combined,
    "object": content.compare_object,
    "array": content.compare_array,
}
