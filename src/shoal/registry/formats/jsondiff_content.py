"""Objects and arrays in Confluent's JSON Schema diff: properties and tuple items judged
against the content model (open, closed, or partially open through ``additionalProperties``,
``patternProperties``, ``additionalItems`` or 2020-12's ``unevaluated*``), required
properties, dependencies and size limits. See :mod:`shoal.registry.formats.jsondiff`."""

from __future__ import annotations

import re
from typing import Any

from shoal.registry.formats.jsondiff_model import (
    Context,
    Doc,
    Schema,
    classify,
    limit,
    number,
    resolve,
)

ADDED = "ADDED"
"""A property or item the writer's schema gains (the direction in Confluent's codes)."""
REMOVED = "REMOVED"
"""A property or item the reader's schema no longer names."""


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


def _unevaluated(schema: Schema, keyword: str) -> Schema | None:
    """2019-09's ``unevaluatedProperties`` / ``unevaluatedItems``, when present."""
    if keyword not in schema.node:
        return None
    return classify(schema.node[keyword], schema.doc)


def _open(schema: Schema, extra_keyword: str, unevaluated_keyword: str) -> bool:
    """Fully open: extra members allowed with no schema, and ``unevaluated*`` absent or
    accepting anything."""
    permits, extra = _extra(schema, extra_keyword)
    if not permits or extra is not None:
        return False
    unevaluated = _unevaluated(schema, unevaluated_keyword)
    return unevaluated is None or unevaluated.kind in ("empty", "true")


def _partial(schema: Schema, extra_keyword: str, unevaluated_keyword: str) -> Schema | None:
    """The schema extra members must match in a partially open model: ``additional*``'s, or
    when that is absent, ``unevaluated*``'s (unless it is false or accepts anything)."""
    permits, extra = _extra(schema, extra_keyword)
    if extra is not None:
        return extra
    unevaluated = _unevaluated(schema, unevaluated_keyword)
    if permits and unevaluated is not None and unevaluated.kind not in ("false", "empty", "true"):
        return unevaluated
    return None


def _object_open(schema: Schema) -> bool:
    return not _pattern_schemas(schema) and _open(
        schema, "additionalProperties", "unevaluatedProperties"
    )


def _object_partial(schema: Schema, name: str) -> Schema | None:
    for pattern, node in _pattern_schemas(schema).items():
        try:
            if re.search(pattern, name):
                return classify(node, schema.doc)
        except re.error:
            continue
    return _partial(schema, "additionalProperties", "unevaluatedProperties")


def _has_default(node: Any, doc: Doc) -> bool:
    resolved, _ = resolve(node, doc)
    return isinstance(resolved, dict) and "default" in resolved


def compare_object(ctx: Context, original: Schema, update: Schema, path: str) -> None:
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
            ctx.compare(
                classify(o_props[name], original.doc),
                classify(u_props[name], update.doc),
                where,
            )
    _compare_dependencies(ctx, original, update, f"{path}/dependencies")
    _compare_extra(ctx, original, update, "additionalProperties", "ADDITIONAL_PROPERTIES", path)
    _compare_unevaluated(
        ctx, original, update, "unevaluatedProperties", "UNEVALUATED_PROPERTIES", path
    )
    for keyword, name in (("maxProperties", "MAX_PROPERTIES"), ("minProperties", "MIN_PROPERTIES")):
        limit(
            ctx,
            f"{path}/{keyword}",
            name,
            number(original.node.get(keyword)),
            number(update.node.get(keyword)),
        )


def _property_removed(
    ctx: Context, original: Schema, update: Schema, name: str, where: str
) -> None:
    # Only the reader's content model matters: it must still accept what the writer sent.
    old = classify(_props(original)[name], original.doc)
    _member_changed(
        ctx, "PROPERTY", REMOVED, old, _object_open(update), _object_partial(update, name), where
    )


def _property_added(ctx: Context, original: Schema, update: Schema, name: str, where: str) -> None:
    # Only the writer's content model matters: an open writer may already send any value.
    new_node = _props(update)[name]
    new = classify(new_node, update.doc)
    qualified = "OPTIONAL_PROPERTY"
    if name in _required(update):
        with_default = _has_default(new_node, update.doc)
        qualified = "REQUIRED_PROPERTY_WITH_DEFAULT" if with_default else "REQUIRED_PROPERTY"
    open_model, partial = _object_open(original), _object_partial(original, name)
    _member_changed(ctx, "PROPERTY", ADDED, new, open_model, partial, where, qualified)


def _member_changed(
    ctx: Context,
    noun: str,
    direction: str,
    member: Schema,
    open_model: bool,
    partial: Schema | None,
    where: str,
    qualified: str | None = None,
) -> None:
    """A property or item (``noun``) the writer has but the reader does not name: ADDED to
    the writer's schema (judged by the old writer's content model) or REMOVED from the
    reader's (judged by the new reader's). The content model is open, partially open (the
    member must fit the schema extra members match: compared writer -> reader), or closed.
    ``qualified``: an added property's name in Confluent's codes (OPTIONAL_PROPERTY,
    REQUIRED_PROPERTY[_WITH_DEFAULT]); for a model that is not open Confluent reports it
    "added to an unopen content model" whether a partial schema covered it or not."""
    to = "TO" if direction == ADDED else "FROM"
    if open_model:
        if direction == ADDED and member.kind in ("empty", "true"):
            ctx.add(f"{noun}_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", where)
        else:
            ctx.add(f"{qualified or noun}_{direction}_{to}_OPEN_CONTENT_MODEL", where)
        return
    if partial is not None:
        writer, reader = (member, partial) if direction == REMOVED else (partial, member)
        sub = ctx.sub()
        sub.compare(writer, reader, where)
        ctx.merge(sub)
        covered = "IS_COVERED" if sub.compatible else "NOT_COVERED"
        ctx.add(f"{noun}_{direction}_{covered}_BY_PARTIALLY_OPEN_CONTENT_MODEL", where)
    if qualified is not None:
        ctx.add(f"{qualified}_ADDED_TO_UNOPEN_CONTENT_MODEL", where)
    elif partial is None:
        if direction == REMOVED and member.kind == "false":
            noun = f"{noun}_WITH_FALSE"
        ctx.add(f"{noun}_{direction}_{to}_CLOSED_CONTENT_MODEL", where)


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
            ctx.compare(
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
        ctx.compare(o_schema, u_schema, where)


def _compare_unevaluated(
    ctx: Context, original: Schema, update: Schema, keyword: str, name: str, path: str
) -> None:
    """``unevaluatedProperties`` / ``unevaluatedItems``: false is closed, true or ``{}`` open,
    a schema partially open."""
    old, new = _unevaluated(original, keyword), _unevaluated(update, keyword)
    if old is None and new is None:
        return
    where = f"{path}/{keyword}"
    if old is None:
        ctx.add(
            f"{name}_REMOVED" if new is not None and new.kind == "false" else f"{name}_NARROWED",
            where,
        )
    elif new is None:
        ctx.add(f"{name}_ADDED" if old.kind == "false" else f"{name}_EXTENDED", where)
    elif old.kind == "false" and new.kind != "false":
        ctx.add(f"{name}_ADDED", where)
    elif old.kind != "false" and new.kind == "false":
        ctx.add(f"{name}_REMOVED", where)
    elif old.kind in ("empty", "true") and new.kind not in ("empty", "true"):
        ctx.add(f"{name}_NARROWED", where)
    elif old.kind not in ("empty", "true") and new.kind in ("empty", "true"):
        ctx.add(f"{name}_EXTENDED", where)
    else:
        ctx.compare(old, new, where)


# ----------------------------------------------------------------- arrays


def _items(schema: Schema) -> tuple[Schema | None, list[Any], Schema]:
    """(the schema of every item, the per-position item schemas, the schema whose
    ``additionalItems`` applies), mapping 2020-12's ``prefixItems``/``items`` onto draft 7's
    ``items`` (list)/``additionalItems``."""
    node = schema.node
    if isinstance(node.get("prefixItems"), list):
        extra = {"additionalItems": node["items"]} if "items" in node else {}
        if "unevaluatedItems" in node:
            extra["unevaluatedItems"] = node["unevaluatedItems"]
        return None, list(node["prefixItems"]), Schema("array", extra, schema.doc)
    items = node.get("items")
    if isinstance(items, list):
        return None, items, schema
    every = classify(items, schema.doc) if isinstance(items, dict | bool) else None
    return every, [], schema


def _array_open(holder: Schema) -> bool:
    return _open(holder, "additionalItems", "unevaluatedItems")


def compare_array(ctx: Context, original: Schema, update: Schema, path: str) -> None:
    o_every, o_tuple, o_holder = _items(original)
    u_every, u_tuple, u_holder = _items(update)
    ctx.compare(o_every, u_every, f"{path}/items")
    for index in range(max(len(o_tuple), len(u_tuple))):
        where = f"{path}/items/{index}"
        if index < len(o_tuple) and index < len(u_tuple):
            ctx.compare(
                classify(o_tuple[index], original.doc),
                classify(u_tuple[index], update.doc),
                where,
            )
        elif index < len(o_tuple):
            _item_removed(ctx, classify(o_tuple[index], original.doc), u_holder, where)
        else:
            _item_added(ctx, o_holder, classify(u_tuple[index], update.doc), where)
    _compare_extra(ctx, o_holder, u_holder, "additionalItems", "ADDITIONAL_ITEMS", path)
    _compare_unevaluated(ctx, o_holder, u_holder, "unevaluatedItems", "UNEVALUATED_ITEMS", path)
    for keyword, name in (
        ("maxItems", "MAX_ITEMS"),
        ("minItems", "MIN_ITEMS"),
        ("maxContains", "MAX_CONTAINS"),
        ("minContains", "MIN_CONTAINS"),
    ):
        limit(
            ctx,
            f"{path}/{keyword}",
            name,
            number(original.node.get(keyword)),
            number(update.node.get(keyword)),
        )
    o_unique = original.node.get("uniqueItems") is True
    u_unique = update.node.get("uniqueItems") is True
    if o_unique != u_unique:
        ctx.add("UNIQUE_ITEMS_REMOVED" if o_unique else "UNIQUE_ITEMS_ADDED", f"{path}/uniqueItems")


def _item_removed(ctx: Context, old: Schema, u_holder: Schema, where: str) -> None:
    partial = _partial(u_holder, "additionalItems", "unevaluatedItems")
    _member_changed(ctx, "ITEM", REMOVED, old, _array_open(u_holder), partial, where)


def _item_added(ctx: Context, o_holder: Schema, new: Schema, where: str) -> None:
    partial = _partial(o_holder, "additionalItems", "unevaluatedItems")
    _member_changed(ctx, "ITEM", ADDED, new, _array_open(o_holder), partial, where)
