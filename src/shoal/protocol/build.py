"""Build a kio message of any version from plain Python values.

kio generates one frozen dataclass per API, version and nested struct, each with its own field
set. Broker handlers compute the same answer for every version; this module fills whichever
class the client's version needs from plain values (ints, strs, lists of dicts), converting
where kio wants its own types (its ErrorCode enum, timedeltas in milliseconds, datetimes) and
giving every field the handler did not mention its default or zero value. Fields a version does
not have are ignored, so handlers can always pass the newest version's fields.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeVar

from kio.schema.errors import ErrorCode as KioErrorCode

T = TypeVar("T")
Converter = Callable[[Any], Any]
_MISSING = object()
_EPOCH = datetime.datetime.fromtimestamp(0, tz=datetime.UTC)


def build(cls: type[T], values: Mapping[str, Any]) -> T:
    """An instance of the kio dataclass ``cls`` from ``values`` (unknown keys are ignored)."""
    kwargs = {}
    for name, convert, zero in _plan(typing.cast(Any, cls)):
        value = values.get(name, _MISSING)
        if value is _MISSING:
            if zero is _MISSING:
                continue  # the dataclass has a default
            value = zero() if callable(zero) else zero
            kwargs[name] = value
        else:
            kwargs[name] = convert(value)
    return cls(**kwargs)


@cache
def _plan(cls: Any) -> tuple[tuple[str, Converter, Any], ...]:
    hints = typing.get_type_hints(cls)
    plan = []
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        has_default = (
            field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING
        )
        plan.append((field.name, _converter(tp), _MISSING if has_default else _zero_factory(tp)))
    return tuple(plan)


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None`` (or ``Optional[X]``), else ``(tp, False)``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _converter(tp: Any) -> Converter:
    inner, optional = unwrap_optional(tp)
    base = _converter_for(inner)
    if not optional:
        return base
    return lambda v: None if v is None else base(v)


def _converter_for(tp: Any) -> Converter:
    origin = typing.get_origin(tp)
    if origin is tuple:
        element = _converter(typing.get_args(tp)[0])
        return lambda v: tuple(element(x) for x in v)
    if dataclasses.is_dataclass(tp):
        cls = typing.cast(type[Any], tp)
        return lambda v: build(cls, v) if isinstance(v, Mapping) else v
    if isinstance(tp, type):
        if issubclass(tp, KioErrorCode):
            return lambda v: v if isinstance(v, KioErrorCode) else KioErrorCode(int(v))
        if issubclass(tp, datetime.timedelta):
            parse = getattr(tp, "parse", None)
            return lambda v: _timedelta(v, parse)
        if issubclass(tp, datetime.datetime):
            return _datetime
    return _identity


def _identity(value: Any) -> Any:
    return value


def _timedelta(value: Any, parse: Callable[[Any], Any] | None) -> Any:
    delta = (
        value if isinstance(value, datetime.timedelta) else datetime.timedelta(milliseconds=value)
    )
    return parse(delta) if parse is not None else delta


def _datetime(value: Any) -> Any:
    """Milliseconds since the epoch (or a datetime) to kio's TZAware; negative means none."""
    if isinstance(value, datetime.datetime):
        return value
    if value is None or value < 0:
        return None
    return _EPOCH + datetime.timedelta(milliseconds=value)


def _zero_factory(tp: Any) -> Any:
    inner, optional = unwrap_optional(tp)
    if optional:
        return None
    origin = typing.get_origin(inner)
    if origin is tuple:
        return ()
    if dataclasses.is_dataclass(inner):
        cls = typing.cast(type[Any], inner)
        return lambda: build(cls, {})
    if isinstance(inner, type):
        if issubclass(inner, KioErrorCode):
            return KioErrorCode(0)
        if issubclass(inner, bool):
            return False
        if issubclass(inner, int):
            return 0
        if issubclass(inner, str):
            return ""
        if issubclass(inner, bytes):
            return b""
        if issubclass(inner, uuid.UUID):
            return uuid.UUID(int=0)
        if issubclass(inner, datetime.timedelta):
            parse = getattr(inner, "parse", None)
            return lambda: _timedelta(0, parse)
        if issubclass(inner, datetime.datetime):
            return None
    return None


def response_for(api_key: int, api_version: int, values: Mapping[str, Any]) -> Any:
    """The response message of ``api_key`` at ``api_version`` built from ``values``."""
    from shoal.protocol._kio import response_class

    return build(response_class(api_key, api_version), values)
