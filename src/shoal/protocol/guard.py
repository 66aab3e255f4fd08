"""A structural check of a request body before kio's native reader sees it.

kio's reader (Rust) reserves memory for an array from its declared element count before reading
the elements; a flexible array claiming 2^32 - 1 elements asks for tens of gigabytes, the
allocation fails, and Rust aborts the whole process — one 24-byte request would kill the broker.
No Python exception can catch an abort, so every length and count is checked here first, by
walking the message's wire layout (read from kio's own schema classes) without building
anything: a count larger than the bytes left, a negative length other than null, an overlong
varint, or a body that ends early is refused as :class:`InvalidRequestError`.

The walk is linear in the request's size and allocates nothing per element.
"""

from __future__ import annotations

import dataclasses
import struct
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, Final

from shoal.protocol.build import unwrap_optional
from shoal.protocol.errors import DecodeError
from shoal.protocol.headers import read_uvarint, skip_tagged_fields

FIXED_SIZES: Final = {
    "bool": 1,
    "int8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "error_code": 2,
    "timedelta_i32": 4,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}
_I16: Final = struct.Struct(">h")
_I32: Final = struct.Struct(">i")

Step = Callable[[bytes, int], int]
"""Checks one field at a position and returns the position after it."""


class LayoutError(DecodeError):
    """The body does not fit its message's layout (a length or count past the end)."""


def check_layout(cls: Any, data: bytes, offset: int) -> None:
    """Raise a :class:`DecodeError` (:class:`LayoutError` for lengths and counts) unless
    ``data[offset:]`` can hold a ``cls`` message."""
    _struct_step(cls)(data, offset)


@cache
def _struct_step(cls: Any) -> Step:
    hints = typing.get_type_hints(cls)
    flexible = bool(getattr(cls, "__flexible__", False))
    steps = [
        _field_step(hints[f.name], f.metadata.get("kafka_type"), flexible)
        for f in dataclasses.fields(cls)
        if "tag" not in f.metadata  # tagged fields live in the tag buffer at the end
    ]

    def walk(data: bytes, position: int) -> int:
        for step in steps:
            position = step(data, position)
        if flexible:
            position = skip_tagged_fields(data, position)
        return position

    return walk


def _field_step(tp: Any, kafka_type: str | None, flexible: bool) -> Step:
    inner, nullable = unwrap_optional(tp)
    if typing.get_origin(inner) is tuple:
        element = typing.get_args(inner)[0]
        return _array_step(_element_step(element, kafka_type, flexible), flexible, nullable)
    if dataclasses.is_dataclass(inner):
        walk = _struct_step(typing.cast(Any, inner))
        return _nullable_struct_step(walk) if nullable else walk
    return _primitive_step(kafka_type, flexible)


def _nullable_struct_step(walk: Step) -> Step:
    """A nullable struct is preceded by a presence byte: -1 for null, 1 for a struct."""

    def step(data: bytes, position: int) -> int:
        position = _need(data, position, 1)
        marker = data[position - 1]
        if marker == 0xFF:
            return position
        if marker != 1:
            raise LayoutError(f"struct presence marker {marker} is neither -1 nor 1")
        return walk(data, position)

    return step


def _element_step(element: Any, kafka_type: str | None, flexible: bool) -> Step:
    element, _nullable = unwrap_optional(element)
    if dataclasses.is_dataclass(element):
        return _struct_step(typing.cast(Any, element))
    return _primitive_step(kafka_type, flexible)


def _primitive_step(kafka_type: str | None, flexible: bool) -> Step:
    if kafka_type in FIXED_SIZES:
        size = FIXED_SIZES[kafka_type]

        def fixed(data: bytes, position: int) -> int:
            return _need(data, position, size)

        return fixed
    if kafka_type == "string":
        return _compact_bytes if flexible else _legacy_string
    if kafka_type in ("bytes", "records"):
        return _compact_bytes if flexible else _legacy_bytes
    raise LayoutError(f"unknown kafka type {kafka_type!r} in a message schema")


def _array_step(element: Step, flexible: bool, nullable: bool) -> Step:
    def array(data: bytes, position: int) -> int:
        if flexible:
            count, position = read_uvarint(data, position)
            count -= 1  # 0 encodes null
        else:
            position = _need(data, position, 4)
            (count,) = _I32.unpack_from(data, position - 4)
        if count < 0:
            if count != -1:
                raise LayoutError(f"negative array length {count}")
            if not nullable:
                # kio would hand the handler None where the schema promises a list.
                raise LayoutError("null array in a field that cannot be null")
            return position
        # Every element takes at least one byte, so a count above the bytes left is a lie.
        if count > len(data) - position:
            raise LayoutError(f"array of {count} elements in {len(data) - position} bytes")
        for _ in range(count):
            position = element(data, position)
        return position

    return array


def _compact_bytes(data: bytes, position: int) -> int:
    length, position = read_uvarint(data, position)
    return position if length == 0 else _need(data, position, length - 1)


def _legacy_string(data: bytes, position: int) -> int:
    position = _need(data, position, 2)
    (length,) = _I16.unpack_from(data, position - 2)
    if length < -1:
        raise LayoutError(f"negative string length {length}")
    return position if length == -1 else _need(data, position, length)


def _legacy_bytes(data: bytes, position: int) -> int:
    position = _need(data, position, 4)
    (length,) = _I32.unpack_from(data, position - 4)
    if length < -1:
        raise LayoutError(f"negative bytes length {length}")
    return position if length == -1 else _need(data, position, length)


def _need(data: bytes, position: int, size: int) -> int:
    end = position + size
    if end > len(data):
        raise LayoutError(f"field of {size} bytes at {position} runs past the end ({len(data)})")
    return end
