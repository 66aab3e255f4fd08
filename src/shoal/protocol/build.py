"""Build a kio message of any version from plain Python values.

kio generates one frozen dataclass per API, version and nested struct, each with its own field
set. Broker handlers compute the same answer for every version; this module fills whichever
class the client's version needs from plain values (ints, strs, lists of dicts), converting
where kio wants its own types (its ErrorCode enum, timedeltas in milliseconds, datetimes) and
giving every field the handler did not mention its default or zero value.

Keys a version does not have are ignored when some served version of the same message has them
(at any level), so handlers can always pass the newest version's fields. A key that no version
has anywhere in the message is a typo and raises :class:`UnknownFieldError`: silently ignored,
it would put a zero on the wire.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Final, TypeVar

from kio.schema.errors import ErrorCode as KioErrorCode

from shoal.invariant import InvariantError

if TYPE_CHECKING:
    from shoal.protocol._kio import ResponseBody

T = TypeVar("T")
Converter = Callable[[Any], Any]
_MISSING = object()
_EPOCH = datetime.datetime.fromtimestamp(0, tz=datetime.UTC)


class UnknownFieldError(InvariantError):
    """A key that no served version of the message has, at any level: a bug in the caller."""


def build(cls: type[T], values: Mapping[str, Any]) -> T:
    """An instance of the kio dataclass ``cls`` from ``values``.

    Raises :class:`UnknownFieldError` for a key that is a field of no served version of the
    message, at any level (keys of other versions are ignored).
    """
    kwargs = {}
    used = 0
    for name, convert, zero in _plan(typing.cast(Any, cls)):
        value = values.get(name, _MISSING)
        if value is _MISSING:
            if zero is _MISSING:
                continue  # the dataclass has a default
            value = zero() if callable(zero) else zero
            kwargs[name] = value
        else:
            used += 1
            kwargs[name] = convert(value)
    if used != len(values):
        # Only here, when some key is not a field of this version, is the union consulted.
        _check_other_versions(cls, values)
    return cls(**kwargs)


def _check_other_versions(cls: type[Any], values: Mapping[str, Any]) -> None:
    place = _places(getattr(cls, "__api_key__", None)).get(cls)
    own = frozenset(f.name for f in dataclasses.fields(cls))
    allowed = place.fields if place is not None else own
    unknown = sorted(str(key) for key in values if key not in own and key not in allowed)
    if not unknown:
        return
    version = getattr(cls, "__version__", "?")
    if place is None:
        where = f"{cls.__qualname__} v{version}, which is part of no served message"
    else:
        where = f"{place.path}, nor anywhere in versions {place.versions} of {place.message}"
    raise UnknownFieldError(
        f"{cls.__qualname__} v{version}: no field {', '.join(map(repr, unknown))} at {where}"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Place:
    """Where a kio class sits in its message, and the field names any served version of the
    message has, at any level."""

    message: str
    path: str
    versions: str
    fields: frozenset[str]


@cache
def _places(api_key: int | None) -> Mapping[type[Any], _Place]:
    """Every class of every served version of ``api_key``'s request and response, mapped to
    its place and the union of the field names of the message (all served versions, all
    levels)."""
    from shoal.protocol._kio import request_class, response_class
    from shoal.protocol.versions import SUPPORTED_APIS

    entry = SUPPORTED_APIS.get(api_key) if api_key is not None else None
    if entry is None:
        return {}
    places: dict[type[Any], _Place] = {}
    for load in (request_class, response_class):
        top = [load(api_key, v) for v in range(entry.min_version, entry.max_version + 1)]
        message = top[-1].__name__
        versions = f"{entry.min_version}-{entry.max_version}"
        fields: dict[str, set[str]] = {}
        classes: dict[str, set[type[Any]]] = {}
        for cls in top:
            _walk(cls, message, fields, classes)
        # The union of the whole message, not of the one place: handlers share helpers that
        # build an entry for two places (OffsetFetch's topics of v1-v7 and groups[].topics of
        # v8+), and a key valid at one of them must not crash a client at the other.
        union = frozenset(name for names in fields.values() for name in names)
        for path, members in classes.items():
            for cls in members:
                places.setdefault(cls, _Place(message, path, versions, union))
    return places


def response_field_names(api_key: int) -> frozenset[str]:
    """Every field name, at any level, of any served version of ``api_key``'s response."""
    from shoal.protocol._kio import response_class
    from shoal.protocol.versions import SUPPORTED_APIS

    message = response_class(api_key, SUPPORTED_APIS[api_key].max_version).__name__
    names: set[str] = set()
    for place in _places(api_key).values():
        if place.message == message:
            names |= place.fields
    return frozenset(names)


def _walk(
    cls: type[Any], path: str, fields: dict[str, set[str]], classes: dict[str, set[type[Any]]]
) -> None:
    hints = typing.get_type_hints(cls)
    fields.setdefault(path, set()).update(f.name for f in dataclasses.fields(cls))
    classes.setdefault(path, set()).add(cls)
    for field in dataclasses.fields(cls):
        inner, _ = unwrap_optional(hints[field.name])
        suffix = ""
        if typing.get_origin(inner) is tuple:
            inner, _ = unwrap_optional(typing.get_args(inner)[0])
            suffix = "[]"
        if dataclasses.is_dataclass(inner):
            _walk(typing.cast(type[Any], inner), f"{path}.{field.name}{suffix}", fields, classes)


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


def response_for(api_key: int, api_version: int, values: Mapping[str, Any]) -> ResponseBody:
    """The response message of ``api_key`` at ``api_version`` built from ``values``."""
    from shoal.protocol._kio import response_class

    return build(response_class(api_key, api_version), values)


_METADATA: Final = 3


def refusal_response(
    api_key: int, api_version: int, request_body: object, error: int, message: str | None = None
) -> ResponseBody | None:
    """``api_key``'s response at ``api_version`` refusing the request as a whole with
    ``error``, as Kafka's ``AbstractRequest.getErrorResponse`` does: the top-level error code
    (and message) where the response has one; Metadata names each requested topic with the
    error. None for the other responses without a top-level error code (their errors are per
    partition; Kafka mirrors each request's items there)."""
    from shoal.protocol._kio import response_class

    cls = response_class(api_key, api_version)
    names = {f.name for f in dataclasses.fields(cls)}
    if api_key == _METADATA:
        topics = getattr(request_body, "topics", None) or ()
        return build(
            cls,
            {"topics": [{"name": t.name, "error_code": error} for t in topics]},
        )
    if "error_code" not in names:
        return None
    values: dict[str, Any] = {"error_code": error}
    if "error_message" in names:
        values["error_message"] = message
    return build(cls, values)
