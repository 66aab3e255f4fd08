"""request_body(): a request message narrowed to a Protocol of the fields a handler reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pytest

from shoal.invariant import InvariantError
from shoal.protocol import ApiKey
from shoal.protocol._kio import request_class
from shoal.protocol.build import build
from shoal.protocol.shape import ShapeError, request_body


class _Partition(Protocol):
    index: int
    records: bytes | None


class _Topic(Protocol):
    name: str
    partition_data: Sequence[_Partition]


class _Produce(Protocol):
    acks: int
    topic_data: Sequence[_Topic]


class _Misspelled(Protocol):
    ackz: int


class _NestedMisspelled(Protocol):
    name: str
    partition_data: Sequence[_Misspelled]


class _ProduceWithBadNesting(Protocol):
    topic_data: Sequence[_NestedMisspelled]


def _produce(version: int) -> object:
    values = {"acks": -1, "topic_data": [{"name": "t", "partition_data": [{"index": 0}]}]}
    return build(request_class(ApiKey.PRODUCE, version), values)


def test_a_conforming_body_is_returned_as_it_is() -> None:
    body = _produce(9)
    typed = request_body(body, _Produce)  # type: ignore[type-abstract,arg-type]
    assert typed is body
    assert typed.topic_data[0].partition_data[0].index == 0


def test_a_field_the_class_lacks_raises_a_programmer_error() -> None:
    with pytest.raises(ShapeError, match="'ackz'") as caught:
        request_body(_produce(9), _Misspelled)  # type: ignore[type-abstract,arg-type]
    assert isinstance(caught.value, InvariantError)


def test_a_nested_field_the_class_lacks_raises() -> None:
    with pytest.raises(ShapeError, match="'ackz'"):
        request_body(_produce(3), _ProduceWithBadNesting)  # type: ignore[type-abstract,arg-type]
