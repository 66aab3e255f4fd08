"""Reading a request's JSON body and query parameters, refusing bad ones with a clear 400."""

from __future__ import annotations

import json
from typing import Any, Final, TypeVar

from starlette.requests import Request

from shoal.server.admin.errors import ApiError

T = TypeVar("T")
_JSON_NAMES: Final[dict[type, str]] = {
    str: "string",
    int: "integer",
    bool: "boolean",
    list: "array",
    dict: "object",
}

MAX_BODY_BYTES: Final = 1024 * 1024
"""The largest JSON body accepted (1 MiB): a produced message and its headers fit."""


async def json_object(request: Request) -> dict[str, Any]:
    """The request body, which must be one JSON object."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"request bodies are at most {MAX_BODY_BYTES} bytes")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return value


def field(body: dict[str, Any], name: str, kind: type[T]) -> T | None:
    """``body[name]``, checked to be a ``kind`` (bool is not an int); None if absent."""
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(400, "invalid_field", f"{name!r} must be a JSON {_JSON_NAMES[kind]}")
    return value


def field_or(body: dict[str, Any], name: str, kind: type[T], default: T) -> T:
    """``body[name]`` as :func:`field` checks it, or ``default`` if absent."""
    value = field(body, name, kind)
    return default if value is None else value


def string_map(value: object, name: str) -> dict[str, str]:
    """A JSON object of strings to strings."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ApiError(400, "invalid_field", f"{name!r} must be an object of string values")
    return dict(value)


def query_int(request: Request, name: str, default: int | None = None) -> int | None:
    """An integer query parameter, or ``default`` when absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer, not {raw!r}") from exc
