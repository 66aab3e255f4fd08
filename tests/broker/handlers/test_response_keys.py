"""A misspelled response key in any handler fails here, even on a path no other test runs.

Handlers build responses from dicts (``response_for``); build() refuses a key that no served
version of the message has at that place, but only when the path runs. This test reads every
handler module's source instead: each string key of a dict literal, and each ``d["key"] = ...``,
must be a field name somewhere in the response message of the module's API (any version, any
level). That is looser than build()'s check (a key of another level passes), but it needs no
request to reach the line.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from shoal.broker.handlers import HANDLERS
from shoal.protocol import SUPPORTED_APIS
from shoal.protocol._kio import response_class
from shoal.protocol.build import response_field_names

# String keys in handler modules that are not message fields, each with the reason.
NOT_MESSAGE_KEYS: dict[str, set[str]] = {
    # A topic config handed to the log-cleaner rule, not a response field.
    "shoal.broker.handlers.delete_records": {"cleanup.policy"},
}


def _modules() -> list[tuple[int, ModuleType]]:
    return [(key, sys.modules[handler.__module__]) for key, handler in sorted(HANDLERS.items())]


def string_keys(source: str) -> Iterator[tuple[str, int]]:
    """(key, line) of every string-constant dict key and subscript-assignment key."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    yield key.value, key.lineno
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                yield node.slice.value, node.lineno


def unknown_keys(api_key: int, module_name: str, source: str) -> list[tuple[str, int]]:
    fields = response_field_names(api_key)
    allowed = NOT_MESSAGE_KEYS.get(module_name, set())
    return sorted((key, line) for key, line in string_keys(source) if key not in fields | allowed)


@pytest.mark.parametrize(
    ("api_key", "module"),
    _modules(),
    ids=[SUPPORTED_APIS[key].name for key, _ in _modules()],
)
def test_every_dict_key_in_the_handler_is_a_response_field(
    api_key: int, module: ModuleType
) -> None:
    source = inspect.getsource(module)
    assert unknown_keys(api_key, module.__name__, source) == []


def test_the_check_finds_a_misspelled_key() -> None:
    # The mutation itself: one key of a real handler misspelled must be reported, with its line.
    from shoal.broker.handlers import heartbeat

    source = inspect.getsource(heartbeat)
    assert '"error_code"' in source
    mutated = source.replace('"error_code"', '"eror_code"')
    found = unknown_keys(12, heartbeat.__name__, mutated)
    assert [key for key, _line in found] == ["eror_code"]


def test_the_check_finds_a_misspelled_subscript_key() -> None:
    source = 'def f(topic):\n    topic["topic_authorized_operatons"] = 0\n'
    assert unknown_keys(3, "m", source) == [("topic_authorized_operatons", 2)]


def test_the_fields_are_those_of_the_response_at_every_level() -> None:
    fields = response_field_names(0)
    top = {f.name for f in dataclasses.fields(response_class(0, 13))}
    assert top <= fields
    assert {"partition_responses", "base_offset", "leader_id"} <= fields  # nested levels
    assert "acks" not in fields  # a request field
