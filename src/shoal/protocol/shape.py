"""A request message seen through a Protocol of the fields a handler reads.

kio has one class per version, and a handler serves every version with one code path. Each
handler declares a :class:`typing.Protocol` listing exactly the fields it reads (those every
served version has; a field only some versions have is read with ``getattr`` and a default),
and narrows the message with :func:`request_body`. mypy then checks every field access against
that Protocol. (mypy's ``type-abstract`` check, which refuses a Protocol where ``type[S]`` is
expected, is off for the handlers for that reason: the Protocol is only ever a shape here.)

The narrowing is checked, not just cast: the first time a kio class meets a shape, every field
the shape declares (and, for a field typed ``Sequence[P]`` or ``P`` with ``P`` another shape,
the fields of ``P`` in the nested class) must exist, else :class:`ShapeError`. A Protocol that
names a field some served version lacks fails the first test that sends that version.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from shoal.invariant import InvariantError
from shoal.protocol._kio import RequestBody
from shoal.protocol.build import unwrap_optional

S = TypeVar("S")


class ShapeError(InvariantError):
    """A handler's Protocol names a field the request's kio class does not have: a bug."""


def request_body(body: RequestBody, shape: type[S]) -> S:
    """``body`` typed as ``shape``; raises :class:`ShapeError` when a declared field is missing."""
    return narrow(body, shape)


def narrow(value: object, shape: type[S]) -> S:
    """Any kio struct (a request or a nested entry of one) typed as ``shape``, checked the same
    way; for an entry whose fields depend on which API's request holds it."""
    key = (type(value), shape)
    problem = _CHECKED.get(key, _UNCHECKED)
    if problem is _UNCHECKED:
        problem = _CHECKED[key] = _mismatch(type(value), shape)
    if problem is not None:
        raise ShapeError(problem)
    return cast(S, value)


_UNCHECKED = "unchecked"
_CHECKED: dict[tuple[type[Any], type[Any]], str | None] = {}
"""(kio class, shape) pairs already checked: a few hundred at most (one per version served)."""


def _mismatch(cls: type[Any], shape: type[Any]) -> str | None:
    """Why ``cls`` does not have every field of ``shape`` (recursively), or None."""
    own = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    cls_hints = typing.get_type_hints(cls) if own else {}
    for name, declared in typing.get_type_hints(shape).items():
        if name not in own:
            version = getattr(cls, "__version__", "?")
            return (
                f"{cls.__qualname__} v{version} has no field {name!r} that {shape.__name__} reads"
            )
        nested_shape = _shape_of(declared)
        if nested_shape is None:
            continue
        nested_cls = _shape_of(cls_hints[name], shapes_only=False)
        if nested_cls is None:
            return (
                f"{cls.__qualname__}.{name} is not a struct, but {shape.__name__} reads it as one"
            )
        problem = _mismatch(nested_cls, nested_shape)
        if problem is not None:
            return problem
    return None


def _shape_of(tp: Any, *, shapes_only: bool = True) -> type[Any] | None:
    """The struct type in ``P``, ``P | None`` or ``Sequence[P]``/``tuple[P, ...]``, if any."""
    inner, _ = unwrap_optional(tp)
    origin = typing.get_origin(inner)
    if origin in (tuple, Sequence):
        inner, _ = unwrap_optional(typing.get_args(inner)[0])
    if not isinstance(inner, type):
        return None
    if shapes_only:
        return inner if getattr(inner, "_is_protocol", False) else None
    return inner if dataclasses.is_dataclass(inner) else None
