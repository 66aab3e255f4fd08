"""Bytes in JSON: UTF-8 text when they are valid UTF-8, base64 otherwise, and back."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from shoal.server.admin.errors import ApiError

UTF8: Final = "utf-8"
BASE64: Final = "base64"


def encode_bytes(data: bytes | None, limit: int | None = None) -> dict[str, Any] | None:
    """``{"encoding", "data"}``, or None for a null key/value/header. With ``limit`` (bytes),
    longer data is cut to its first ``limit`` bytes and says so: ``"truncated": true`` and
    ``"size"``, its whole length in bytes."""
    if data is None:
        return None
    if limit is None or len(data) <= limit:
        return _encoded(data, cut=False)
    return {**_encoded(data[:limit], cut=True), "truncated": True, "size": len(data)}


def _encoded(data: bytes, *, cut: bool) -> dict[str, Any]:
    """UTF-8 text if it is (a ``cut`` may end inside a character: that is dropped), else
    base64."""
    try:
        return {"encoding": UTF8, "data": data.decode(UTF8)}
    except UnicodeDecodeError as exc:
        if cut and exc.reason == "unexpected end of data":  # a character's first bytes end it
            return {"encoding": UTF8, "data": data[: exc.start].decode(UTF8)}
    return {"encoding": BASE64, "data": base64.b64encode(data).decode("ascii")}


def decode_bytes(value: Any, name: str) -> bytes | None:  # noqa: ANN401 - JSON of any shape
    """The bytes a request gives as null, a string (UTF-8 text), or ``{"encoding", "data"}``."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode(UTF8)
    if isinstance(value, dict) and isinstance(value.get("data"), str):
        encoding = value.get("encoding", UTF8)
        if encoding == UTF8:
            return str(value["data"]).encode(UTF8)
        if encoding == BASE64:
            try:
                return base64.b64decode(value["data"], validate=True)
            except binascii.Error as exc:
                raise ApiError(400, "invalid_field", f"{name!r} is not base64: {exc}") from exc
    raise ApiError(
        400,
        "invalid_field",
        f'{name!r} must be null, a string, or {{"encoding": "utf-8"|"base64", "data"}}',
    )
