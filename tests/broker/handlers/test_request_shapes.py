"""Each handler's request shape (the Protocol of the fields it reads) fits every served version.

request_body() checks a shape the first time a version meets it; this test checks every served
version of every API up front, so a shape that names a field one old version lacks fails here
even when no other test sends that version. Shapes read only for some versions (a handler's
branch for batched requests, say) are checked by request_body() where they are used.
"""

from __future__ import annotations

import ast
import inspect
import sys

import pytest

from shoal.broker.handlers import HANDLERS
from shoal.protocol import SUPPORTED_APIS
from shoal.protocol._kio import request_class
from shoal.protocol.shape import _mismatch


def _main_shape(module_name: str) -> str | None:
    """The name of the shape assigned to ``body`` in the module, if there is one."""
    tree = ast.parse(inspect.getsource(sys.modules[module_name]))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        target, value = node.targets[0], node.value
        pairs = (
            zip(target.elts, value.elts, strict=False)
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
            else [(target, value)]
        )
        for name, call in pairs:
            if (
                isinstance(name, ast.Name)
                and name.id == "body"
                and isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "request_body"
                and isinstance(call.args[1], ast.Name)
            ):
                return call.args[1].id
    return None


# Where a handler hands its request to another module's code, that module narrows it.
NARROWED_IN = {
    "shoal.broker.handlers.incremental_alter_configs": "shoal.broker.handlers.alter_configs",
}


def _narrowing_module(handler_module: str) -> str:
    return NARROWED_IN.get(handler_module, handler_module)


CASES = [
    (key, version, _narrowing_module(handler.__module__))
    for key, handler in sorted(HANDLERS.items())
    for version in range(SUPPORTED_APIS[key].min_version, SUPPORTED_APIS[key].max_version + 1)
    if _main_shape(_narrowing_module(handler.__module__)) is not None
]


@pytest.mark.parametrize(
    ("key", "version", "module"),
    CASES,
    ids=[f"{SUPPORTED_APIS[k].name}-v{v}" for k, v, _ in CASES],
)
def test_the_handlers_shape_fits_every_served_version(key: int, version: int, module: str) -> None:
    shape = getattr(sys.modules[module], _main_shape(module) or "")
    assert _mismatch(request_class(key, version), shape) is None


def _untyped_body_reads(source: str) -> list[int]:
    """Lines reading ``request.body`` other than as request_body()'s first argument."""
    tree = ast.parse(source)
    allowed = {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "request_body"
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "body"
        and isinstance(node.value, ast.Name)
        and node.value.id == "request"
        and id(node) not in allowed
    ]


@pytest.mark.parametrize("module", sorted({h.__module__ for h in HANDLERS.values()}))
def test_handlers_read_their_request_only_through_a_shape(module: str) -> None:
    source = inspect.getsource(sys.modules[module])
    assert _untyped_body_reads(source) == []
    assert "cast(Any" not in source


def test_the_body_check_finds_an_untyped_read() -> None:
    source = "def f(request):\n    body = request.body\n    return request_body(request.body, S)\n"
    assert _untyped_body_reads(source) == [2]


def test_most_handlers_have_a_shape_for_every_version() -> None:
    # The others read no request field (ApiVersions, ListPartitionReassignments, and
    # SaslHandshake/SaslAuthenticate, which the broker answers only with ILLEGAL_SASL_STATE)
    # or none that every version has (ListConfigResources, which narrows where v1 has one).
    untyped = {
        SUPPORTED_APIS[k].name
        for k, h in HANDLERS.items()
        if not _main_shape(_narrowing_module(h.__module__))
    }
    assert untyped == {
        "API_VERSIONS",
        "LIST_CONFIG_RESOURCES",
        "LIST_PARTITION_REASSIGNMENTS",
        "SASL_HANDSHAKE",
        "SASL_AUTHENTICATE",
    }


# Shapes a handler narrows to only for the versions that have them: (module, shape, key, versions).
VERSION_SHAPES = [
    ("leave_group", "_SingleLeave", 13, range(0, 3)),
    ("leave_group", "_BatchedLeave", 13, range(3, 6)),
    ("offset_fetch", "_Group", 9, range(1, 8)),
    ("offset_fetch", "_BatchedFetch", 9, range(8, 11)),
    ("delete_topics", "_ByName", 20, range(1, 6)),
    ("delete_topics", "_ByState", 20, range(6, 7)),
    ("list_config_resources", "_ByType", 74, range(1, 2)),
    ("add_partitions_to_txn", "_ClientForm", 24, range(0, 4)),
    ("add_partitions_to_txn", "_BatchedForm", 24, range(4, 6)),
]
VERSION_CASES = [(m, s, k, v) for m, s, k, versions in VERSION_SHAPES for v in versions]


@pytest.mark.parametrize(
    ("module", "shape", "key", "version"),
    VERSION_CASES,
    ids=[f"{m}.{s}-v{v}" for m, s, _, v in VERSION_CASES],
)
def test_version_specific_shapes_fit_their_versions(
    module: str, shape: str, key: int, version: int
) -> None:
    found = getattr(sys.modules[f"shoal.broker.handlers.{module}"], shape)
    assert _mismatch(request_class(key, version), found) is None


def test_version_specific_shapes_cover_every_served_version() -> None:
    for module, key in {(m, k) for m, _, k, _ in VERSION_SHAPES}:
        served = range(SUPPORTED_APIS[key].min_version, SUPPORTED_APIS[key].max_version + 1)
        covered = {v for m, _, k, versions in VERSION_SHAPES if m == module for v in versions}
        if module == "list_config_resources":
            covered.add(0)  # v0 reads no field
        assert covered == set(served), module
