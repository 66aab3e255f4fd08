"""Building kio message objects generically, for tests that cover every API and version.

Two ways: :func:`empty_instance` fills every field with its zero value (empty arrays, None for
nullable fields, 0, "", b""), and :func:`message_strategy` asks Hypothesis for arbitrary ones.
kio registers strategies for its own bounded int and string types when Hypothesis is installed;
``records`` fields need one more, registered here.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import types
import typing
import uuid
from functools import cache
from typing import Any

from hypothesis import strategies as st
from kio.static.primitive import Records, i64Timedelta

from shoal.protocol import SUPPORTED_APIS
from shoal.protocol._kio import request_class, response_class

st.register_type_strategy(Records, st.binary(max_size=64))
# kio's own i64Timedelta strategy draws values up to the int64-millisecond limit, which kio's
# reader then refuses ("timedelta milliseconds overflow"). No broker sends such durations, so
# draw from a range kio reads back (about +-35 years).
st.register_type_strategy(
    i64Timedelta,
    st.integers(-(2**40), 2**40).map(
        lambda ms: i64Timedelta.parse(datetime.timedelta(milliseconds=ms))
    ),
)

EPOCH = datetime.datetime.fromtimestamp(0, tz=datetime.UTC)


def empty_instance(cls: type[Any]) -> Any:
    """An instance of the kio dataclass ``cls`` with every field at its zero value."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if field.default is dataclasses.MISSING:
            values[field.name] = _zero(hints[field.name])
    return cls(**values)


def _zero(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args:
            return None
        return _zero(args[0])
    if origin is tuple:
        return ()
    if dataclasses.is_dataclass(tp):
        return empty_instance(tp)
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return tp(0)
        if issubclass(tp, bool):
            return False
        if issubclass(tp, int):
            return tp(0)
        if issubclass(tp, float):
            return 0.0
        if issubclass(tp, str):
            return ""
        if issubclass(tp, bytes):
            return b""
        if issubclass(tp, uuid.UUID):
            return uuid.UUID(int=0)
        if issubclass(tp, datetime.datetime):
            return EPOCH
        if issubclass(tp, datetime.timedelta):
            return datetime.timedelta(0)
    raise TypeError(f"no zero value for {tp!r}")


@cache
def message_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    return st.from_type(cls)


def served_versions() -> list[tuple[int, int]]:
    """(api_key, version) at the lowest and highest served version of every API in the table."""
    pairs = []
    for key, entry in sorted(SUPPORTED_APIS.items()):
        for version in sorted({entry.min_version, entry.max_version}):
            pairs.append((key, version))
    return pairs


def all_served_versions() -> list[tuple[int, int]]:
    return [
        (key, version)
        for key, entry in sorted(SUPPORTED_APIS.items())
        for version in range(entry.min_version, entry.max_version + 1)
    ]


def message_class(key: int, version: int, kind: str) -> type[Any]:
    return request_class(key, version) if kind == "request" else response_class(key, version)


def case_id(key: int, version: int, kind: str = "") -> str:
    name = SUPPORTED_APIS[key].name
    return f"{name}-v{version}" + (f"-{kind}" if kind else "")
