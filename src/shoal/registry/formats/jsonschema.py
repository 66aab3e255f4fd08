"""JSON Schema: validity through the ``jsonschema`` package (draft 7 unless ``$schema`` names
another draft, such as 2020-12), compatibility checked here.

The check asks one question: does every instance valid under the writer's schema validate
under the reader's? So a reader may widen (accept more types, relax limits, drop required
properties, drop enum restrictions) and may not narrow. Objects follow Confluent's content-model
rules: a property the writer may send but the reader does not declare is fine only if the
reader's content model is open (or its ``additionalProperties`` schema accepts it); a property
the reader declares but the writer does not is fine only if the writer's model is closed,
because an open writer may already have sent any value under that name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

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

# Upper limits ("the reader accepts at most") and lower limits ("at least"): a reader may only
# loosen them, i.e. have no limit, or one at least as wide as the writer's.
UPPER_LIMITS: Final = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
LOWER_LIMITS: Final = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
# Keywords whose reader-side appearance (or change) narrows what is accepted, compared as-is
# because a full implication check on them is undecidable in general (patterns) or rare.
EXACT_KEYWORDS: Final = (
    "pattern",
    "format",
    "not",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "contains",
    "propertyNames",
)
MAX_DEPTH: Final = 64
"""Recursive schemas ($ref cycles) are cut at this depth, treating the rest as compatible."""


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
        checker = _Checker(self, writer)
        return checker.check(self.document, self.document, writer.document, writer.document, "#", 0)

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
    try:
        validator = jsonschema.validators.validator_for(
            document, default=jsonschema.Draft7Validator
        )
        validator.check_schema(document)  # type: ignore[arg-type]  # booleans are schemas too
    except jsonschema.exceptions.SchemaError as exc:
        raise SchemaParseError(f"{what}: {exc.message}") from exc


def _types(node: dict[str, Any]) -> set[str] | None:
    declared = node.get("type")
    if declared is None:
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def _accepts_anything(node: Any) -> bool:
    return node is True or node == {}


class _Checker:
    def __init__(self, reader: JsonSchema, writer: JsonSchema) -> None:
        self.reader = reader
        self.writer = writer
        self.seen: set[tuple[int, int]] = set()

    def _resolve(self, node: Any, root: Any, side: JsonSchema) -> tuple[Any, Any]:
        """Follow ``$ref`` to its target: a pointer in the same document, or a reference name
        (optionally with a pointer) registered with the schema."""
        hops = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and hops < MAX_DEPTH:
            hops += 1
            target, _, pointer = node["$ref"].partition("#")
            if target:
                if target not in side.references:
                    return {}, root  # unresolvable: nothing can be concluded, treat as open
                root = side.references[target]
            node = _walk_pointer(root, pointer)
        return node, root

    def check(self, r: Any, r_root: Any, w: Any, w_root: Any, path: str, depth: int) -> list[str]:
        r, r_root = self._resolve(r, r_root, self.reader)
        w, w_root = self._resolve(w, w_root, self.writer)
        key = (id(r), id(w))
        if depth > MAX_DEPTH or key in self.seen or _accepts_anything(r) or w is False:
            return []
        self.seen.add(key)
        try:
            return self._check_resolved(r, r_root, w, w_root, path, depth)
        finally:
            self.seen.discard(key)

    def _check_resolved(
        self, r: Any, r_root: Any, w: Any, w_root: Any, path: str, depth: int
    ) -> list[str]:
        if r is False:
            return [f"{path}: the reader accepts nothing"]
        if w is True:
            w = {}

        def sub(rn: Any, wn: Any, where: str) -> list[str]:
            return self.check(rn, r_root, wn, w_root, where, depth + 1)

        for union in ("anyOf", "oneOf"):
            if isinstance(w.get(union), list):
                rest = {k: v for k, v in w.items() if k != union}
                errors: list[str] = []
                for i, branch in enumerate(w[union]):
                    branch_w = {**rest, **branch} if isinstance(branch, dict) else branch
                    errors += sub(r, branch_w, f"{path}/{union}/{i}")
                return errors
        for union in ("anyOf", "oneOf"):
            if isinstance(r.get(union), list):
                rest = {k: v for k, v in r.items() if k != union}
                for branch in r[union]:
                    branch_r = {**rest, **branch} if isinstance(branch, dict) else branch
                    if not sub(branch_r, w, path):
                        return []
                return [f"{path}: no branch of the reader's {union} accepts the writer's schema"]
        if isinstance(r.get("allOf"), list):
            errors = []
            for i, branch in enumerate(r["allOf"]):
                errors += sub(branch, w, f"{path}/allOf/{i}")
            return errors
        return self._check_keywords(r, w, path, sub)

    def _check_keywords(
        self,
        r: dict[str, Any],
        w: dict[str, Any],
        path: str,
        sub: Callable[[Any, Any, str], list[str]],
    ) -> list[str]:
        errors = _check_types(r, w, path) + _check_values(r, w, path) + _check_limits(r, w, path)
        r_types = _types(r)
        if r_types is None or "object" in r_types:
            errors += self._check_object(r, w, path, sub)
        if r_types is None or "array" in r_types:
            errors += self._check_array(r, w, path, sub)
        return errors

    def _check_object(
        self,
        r: dict[str, Any],
        w: dict[str, Any],
        path: str,
        sub: Callable[[Any, Any, str], list[str]],
    ) -> list[str]:
        errors: list[str] = []
        r_props: dict[str, Any] = r.get("properties") or {}
        w_props: dict[str, Any] = w.get("properties") or {}
        r_extra = r.get("additionalProperties", True)
        w_extra = w.get("additionalProperties", True)
        for name in sorted(set(r.get("required") or ()) - set(w.get("required") or ())):
            errors.append(f"{path}/required: REQUIRED_PROPERTY_ADDED '{name}'")
        for name in sorted(set(w_props) & set(r_props)):
            errors += sub(r_props[name], w_props[name], f"{path}/properties/{name}")
        for name in sorted(set(w_props) - set(r_props)):
            if r_extra is False:
                errors.append(
                    f"{path}/properties/{name}: PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
                )
            elif isinstance(r_extra, dict):
                errors += sub(r_extra, w_props[name], f"{path}/properties/{name}")
        for name in sorted(set(r_props) - set(w_props)):
            if w_extra is False:
                continue  # the writer never sends it
            if isinstance(w_extra, dict):
                errors += sub(r_props[name], w_extra, f"{path}/properties/{name}")
            elif not _accepts_anything(r_props[name]):
                errors.append(f"{path}/properties/{name}: PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL")
        if r_extra is False and w_extra is not False:
            errors.append(f"{path}/additionalProperties: ADDITIONAL_PROPERTIES_REMOVED")
        elif isinstance(r_extra, dict):
            errors += sub(
                r_extra, {} if w_extra is True else w_extra, f"{path}/additionalProperties"
            )
        return errors

    def _check_array(
        self,
        r: dict[str, Any],
        w: dict[str, Any],
        path: str,
        sub: Callable[[Any, Any, str], list[str]],
    ) -> list[str]:
        errors: list[str] = []
        r_items, w_items = r.get("items"), w.get("items")
        if isinstance(r_items, dict | bool):
            w_item = w_items if isinstance(w_items, dict | bool) else {}
            errors += sub(r_items, w_item, f"{path}/items")
        r_prefix = r.get("prefixItems") or (r_items if isinstance(r_items, list) else None)
        w_prefix = w.get("prefixItems") or (w_items if isinstance(w_items, list) else None)
        if isinstance(r_prefix, list):
            w_list = w_prefix if isinstance(w_prefix, list) else []
            for i, r_item in enumerate(r_prefix):
                w_item = w_list[i] if i < len(w_list) else {}
                errors += sub(r_item, w_item, f"{path}/prefixItems/{i}")
        if r.get("uniqueItems") is True and w.get("uniqueItems") is not True:
            errors.append(f"{path}/uniqueItems: UNIQUE_ITEMS_ADDED")
        return errors


def _check_types(r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
    r_types, w_types = _types(r), _types(w)
    if r_types is None:
        return []
    if w_types is None:
        if "enum" in w or "const" in w:
            return []  # the values are checked against the reader's enum/const instead
        return [
            f"{path}/type: TYPE_NARROWED (the writer allows any type, the reader {sorted(r_types)})"
        ]
    errors = []
    for t in sorted(w_types):
        if t in r_types or (t == "integer" and "number" in r_types):
            continue
        errors.append(f"{path}/type: TYPE_CHANGED ('{t}' is not accepted by {sorted(r_types)})")
    return errors


def _check_values(r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
    errors = []
    if "enum" in r:
        if "enum" in w:
            missing = [v for v in w["enum"] if v not in r["enum"]]
            if missing:
                errors.append(f"{path}/enum: ENUM_ARRAY_NARROWED (removed {missing})")
        elif "const" in w:
            if w["const"] not in r["enum"]:
                errors.append(f"{path}/enum: the writer's const is not in the reader's enum")
        else:
            errors.append(f"{path}/enum: ENUM_ARRAY_ADDED")
    if "const" in r and w.get("const", object()) != r["const"]:
        if not ("enum" in w and all(v == r["const"] for v in w["enum"])):
            errors.append(f"{path}/const: CONST_CHANGED")
    for keyword in EXACT_KEYWORDS:
        if keyword in r and r[keyword] != w.get(keyword):
            errors.append(f"{path}/{keyword}: {keyword.upper()}_ADDED_OR_CHANGED")
    return errors


def _check_limits(r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
    errors = []
    for keyword in UPPER_LIMITS:
        if _is_number(r.get(keyword)):
            theirs = w.get(keyword)
            if not _is_number(theirs) or theirs > r[keyword]:
                errors.append(f"{path}/{keyword}: {keyword.upper()}_DECREASED_OR_ADDED")
    for keyword in LOWER_LIMITS:
        if _is_number(r.get(keyword)):
            theirs = w.get(keyword)
            if not _is_number(theirs) or theirs < r[keyword]:
                errors.append(f"{path}/{keyword}: {keyword.upper()}_INCREASED_OR_ADDED")
    r_multiple, w_multiple = r.get("multipleOf"), w.get("multipleOf")
    if isinstance(r_multiple, int | float) and _is_number(r_multiple):
        if not isinstance(w_multiple, int | float) or (w_multiple / r_multiple) % 1 != 0:
            errors.append(f"{path}/multipleOf: MULTIPLE_OF_CHANGED_OR_ADDED")
    return errors


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
