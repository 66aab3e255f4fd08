"""Payload encoding for publishers and typed decoding for handlers.

JSON is the default wire format. Pydantic models and msgspec structs are recognised by duck
typing (``model_validate_json`` / ``model_dump_json``), so neither is a dependency of shoal.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, get_origin

Decoder = Callable[[bytes], Any]


class SerdeError(Exception):
    """A payload could not be encoded or decoded. Retrying cannot help: it goes to the DLQ."""


def encode(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    dump = getattr(value, "model_dump_json", None)
    if callable(dump):
        return str(dump()).encode("utf-8")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.dumps(value, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise SerdeError(f"cannot encode {type(value).__name__} as JSON: {exc}") from exc


def _json(raw: bytes) -> Any:
    return json.loads(raw)


def _bytes(raw: bytes) -> bytes:
    return raw


def _str(raw: bytes) -> str:
    return raw.decode("utf-8")


def decoder_for(annotation: Any) -> Decoder:
    """The decoder for a handler parameter annotated ``annotation`` (no annotation: JSON)."""
    if annotation is bytes:
        return _bytes
    if annotation is str:
        return _str
    validate = getattr(annotation, "model_validate_json", None)
    if callable(validate):
        return lambda raw: validate(raw)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        cls: type[Any] = annotation

        def dataclass_from_json(raw: bytes) -> Any:
            fields = _json(raw)
            if not isinstance(fields, dict):
                raise SerdeError(f"{cls.__name__} needs a JSON object, got {type(fields).__name__}")
            return cls(**fields)

        return dataclass_from_json
    if annotation in (dict, list, Any, object) or get_origin(annotation) in (dict, list):
        return _json
    if annotation in (int, float, bool):
        scalar: type[Any] = annotation

        def scalar_from_json(raw: bytes) -> Any:
            value = _json(raw)
            # bool is an int in Python; a JSON true is not a count.
            if not isinstance(value, scalar) or (scalar is int and isinstance(value, bool)):
                raise SerdeError(f"expected a JSON {scalar.__name__}, got {raw[:40]!r}")
            return value

        return scalar_from_json
    raise TypeError(f"shoal cannot decode a handler parameter of type {annotation!r}")


def decode(decoder: Decoder, raw: bytes) -> Any:
    """Run ``decoder``, turning whatever it raises into :class:`SerdeError`."""
    try:
        return decoder(raw)
    except SerdeError:
        raise
    except Exception as exc:
        raise SerdeError(f"cannot decode payload: {type(exc).__name__}: {exc}") from exc
