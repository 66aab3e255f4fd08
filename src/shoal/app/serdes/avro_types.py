"""Python types to Avro and back: the record schema of a dataclass or pydantic model, the Avro
datum of a value, and the value of a decoded datum.

Record names are the class names without a namespace: a namespace taken from the Python module
would change the schema's full name (and so break compatibility) whenever a class moves.

    ========================  ======================================================
    Python                    Avro
    ========================  ======================================================
    bool / int / float        boolean / long / double
    str / bytes               string / bytes
    T | None                  ["null", T] with default null (a union)
    list[T] / dict[str, T]    array / map
    dataclass, pydantic model record (named; defined once, then named by reference)
    enum.Enum                 enum of the member *names* (values may be any object)
    datetime / date / UUID    long timestamp-micros / int date / string uuid
    ========================  ======================================================
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, get_args, get_origin

_PRIMITIVES: dict[Any, Any] = {
    bool: "boolean",
    int: "long",
    float: "double",
    str: "string",
    bytes: "bytes",
    datetime: {"type": "long", "logicalType": "timestamp-micros"},
    date: {"type": "int", "logicalType": "date"},
    uuid.UUID: {"type": "string", "logicalType": "uuid"},
}
_NO_DEFAULT = object()


def is_record_type(cls: object) -> bool:
    return isinstance(cls, type) and (
        dataclasses.is_dataclass(cls) or callable(getattr(cls, "model_json_schema", None))
    )


def record_fields(cls: type[Any]) -> list[tuple[str, Any, Any]]:
    """(name, annotation, default or _NO_DEFAULT) of each field of a dataclass or model."""
    model_fields = getattr(cls, "model_fields", None)
    if isinstance(model_fields, dict):  # pydantic v2
        out = []
        for name, info in model_fields.items():
            default = _NO_DEFAULT
            if not info.is_required():
                factory = info.default_factory
                default = factory() if factory is not None else info.default
            out.append((name, info.annotation, default))
        return out
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        value: Any = _NO_DEFAULT
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        fields.append((f.name, hints.get(f.name, Any), value))
    return fields


def avro_schema(cls: type[Any]) -> dict[str, Any]:
    """The Avro record schema of a dataclass or pydantic model."""
    if not is_record_type(cls):
        raise TypeError(f"{cls!r} is neither a dataclass nor a pydantic model")
    schema: dict[str, Any] = _SchemaBuilder().record(cls)  # a first use: the full record
    return schema


class _SchemaBuilder:
    def __init__(self) -> None:
        # Avro forbids defining a name twice: the second use of a class is its name alone.
        self.defined: dict[str, type[Any]] = {}

    def _name(self, cls: type[Any]) -> str | None:
        """The name to refer to ``cls`` by if it is defined already; raise on a clash."""
        owner = self.defined.get(cls.__name__)
        if owner is cls:
            return cls.__name__
        if owner is not None:
            raise TypeError(
                f"two different types are named {cls.__name__!r} ({owner.__module__} and "
                f"{cls.__module__}); Avro needs the names in one schema to be unique"
            )
        self.defined[cls.__name__] = cls
        return None

    def record(self, cls: type[Any]) -> Any:
        known = self._name(cls)
        if known is not None:
            return known
        fields = []
        for name, annotation, default in record_fields(cls):
            field: dict[str, Any] = {"name": name}
            field["type"] = self.type_of(annotation, default, f"{cls.__name__}.{name}")
            if default is not _NO_DEFAULT:
                field["default"] = _avro_default(default)
            fields.append(field)
        return {"type": "record", "name": cls.__name__, "fields": fields}

    def type_of(self, annotation: Any, default: Any, where: str) -> Any:
        if annotation in _PRIMITIVES:
            return _PRIMITIVES[annotation]
        origin, args = get_origin(annotation), get_args(annotation)
        if origin in (typing.Union, types.UnionType):
            branches = [self.type_of(a, _NO_DEFAULT, where) for a in args if a is not type(None)]
            if type(None) not in args:
                return branches
            # A union's default must match its first branch: null first unless the default
            # is a value.
            nullable_first = default is None or default is _NO_DEFAULT
            return ["null", *branches] if nullable_first else [*branches, "null"]
        if origin in (list, tuple, set, frozenset) and args:
            return {"type": "array", "items": self.type_of(args[0], _NO_DEFAULT, where)}
        if origin is dict and len(args) == 2:
            if args[0] is not str:
                raise TypeError(f"{where}: Avro maps have string keys, not {args[0]!r}")
            return {"type": "map", "values": self.type_of(args[1], _NO_DEFAULT, where)}
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            known = self._name(annotation)
            if known is not None:
                return known
            symbols = [m.name for m in annotation]
            return {"type": "enum", "name": annotation.__name__, "symbols": symbols}
        if is_record_type(annotation):
            return self.record(annotation)
        raise TypeError(f"{where}: no Avro type for {annotation!r}")


def _avro_default(default: Any) -> Any:
    """A field default as Avro's JSON spells it."""
    if isinstance(default, enum.Enum):
        return default.name
    if isinstance(default, bytes):
        return default.decode("latin-1")  # Avro's JSON encoding of bytes: one char per byte
    if isinstance(default, list | tuple | set | frozenset):
        return [_avro_default(v) for v in default]
    if isinstance(default, dict):
        return {k: _avro_default(v) for k, v in default.items()}
    if is_record_type(type(default)):
        return to_avro(default)
    if isinstance(default, datetime | date | uuid.UUID):
        raise TypeError(f"a default of type {type(default).__name__} has no Avro JSON form")
    return default


def to_avro(value: Any) -> Any:
    """The Avro datum of ``value``: records as dicts, enums as their names."""
    if isinstance(value, enum.Enum):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_avro(getattr(value, f.name)) for f in dataclasses.fields(value)}
    model_fields = getattr(type(value), "model_fields", None)
    if isinstance(model_fields, dict):
        return {name: to_avro(getattr(value, name)) for name in model_fields}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_avro(v) for v in value]
    if isinstance(value, dict):
        return {k: to_avro(v) for k, v in value.items()}
    return value


Build = Callable[[Any], Any]


def builder(annotation: Any) -> Build:
    """A function from a decoded Avro datum to ``annotation``, made once per codec."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [builder(a) for a in args if a is not type(None)]
        if len(options) == 1:
            only = options[0]
            return lambda v: None if v is None else only(v)
        return lambda v: v  # several branches: the datum is already the branch's value
    if origin in (list, tuple, set, frozenset) and args:
        item, make = builder(args[0]), origin
        return lambda v: make(item(x) for x in v)
    if origin is dict and len(args) == 2:
        value_of = builder(args[1])
        return lambda v: {k: value_of(x) for k, x in v.items()}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        members = annotation.__members__
        return lambda v: members[v]
    if is_record_type(annotation):
        return _record_builder(annotation)
    return lambda v: v


def _record_builder(cls: type[Any]) -> Build:
    # Fields are built lazily: a record type may contain itself (a tree, a linked list).
    fields: dict[str, Build] = {}
    names = [name for name, _, _ in record_fields(cls)]
    validate = getattr(cls, "model_validate", None)

    def build(datum: Any) -> Any:
        if not fields:
            fields.update({n: builder(a) for n, a, _ in record_fields(cls)})
        # Fields the reader schema has but the class does not are left out; fields the class
        # has but the datum lacks take the class's defaults.
        kwargs = {n: fields[n](datum[n]) for n in names if n in datum}
        return validate(kwargs) if callable(validate) else cls(**kwargs)

    return build
