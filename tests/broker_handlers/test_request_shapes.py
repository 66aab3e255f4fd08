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


CASES = [
    (key, version, handler.__module__)
    for key, handler in sorted(HANDLERS.items())
    for version in range(SUPPORTED_APIS[key].min_version, SUPPORTED_APIS[key].max_version + 1)
    if _main_shape(handler.__module__) is not None
]


@pytest.mark.parametrize(
    ("key", "version", "module"),
    CASES,
    ids=[f"{SUPPORTED_APIS[k].name}-v{v}" for k, v, _ in CASES],
)
def test_the_handlers_shape_fits_every_served_version(key: int, version: int, module: str) -> None:
    shape = getattr(sys.modules[module], _main_shape(module) or "")
    assert _mismatch(request_class(key, version), shape) is None


def test_handlers_with_a_shape() -> None:
    # Grows as handlers are typed; every handler reading its request has one at the end.
    typed = {SUPPORTED_APIS[k].name for k, h in HANDLERS.items() if _main_shape(h.__module__)}
    assert {"HEARTBEAT", "SYNC_GROUP", "JOIN_GROUP", "DESCRIBE_GROUPS"} <= typed
