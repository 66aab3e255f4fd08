"""Which tests need a peer (the Kafka JVM and its tools, Redis, RabbitMQ, NATS, kcat, franz-go,
a packaging build): the ``peer`` marker is derived here, so ``make unit`` (``-m "not peer and
not slow"``) stays peer-free as tests are added, without anyone remembering a marker.

A test needs a peer when any of these holds:

- it lives in a suite that is about peers (``PEER_SUITES``);
- it, or a fixture it uses, takes a peer fixture (``PEER_FIXTURES``) as an argument;
- its body, the body of a fixture it uses, or a function of their module that they call, names
  a peer fixture (a string passed to ``request.getfixturevalue``, or a table of them),
  something that starts a peer (``PEER_STARTERS``) or a ``tests.peers`` module.

A parametrized fixture is not read (it would mark every param for the sake of one): it marks its
peer params itself, ``pytest.param("redis", marks=pytest.mark.peer)``. What this reading misses
the run-time check :class:`PeerGuard` catches: a test that sets up a peer fixture without the
marker fails, so ``make unit`` fails loudly instead of quietly depending on a peer.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from tests.peers import franzgo, kafka_peer, servers

TESTS_DIR: Final = Path(__file__).resolve().parents[1]

PEER_SUITES: Final = frozenset({"peers", "differential", "packaging", "bench"})
"""Folders under tests/ whose every test drives a peer or builds the package."""

PEER_FIXTURES: Final = frozenset(
    {"kafka_peer", "redis_server", "rabbitmq_server", "nats_server", "kcat", "kafka_cluster"}
    # the web console's browser tests (issue 17): Debian's chromium
    | {"chromium"}
)
"""The session's peer servers (tests/conftest.py) and the kcat binary (tests/conformance)."""

PEER_STARTERS: Final[tuple[object, ...]] = (
    servers.start_redis,
    servers.start_rabbitmq,
    servers.start_nats,
    kafka_peer.KafkaPeer,
    kafka_peer.kafka_tool,
    kafka_peer.java_command,
    kafka_peer.format_storage,
    franzgo.install,
    franzgo.run_suite,
)

PEER_MODULES: Final = frozenset(
    {"tests.peers.servers", "tests.peers.kafka_peer", "tests.peers.franzgo"}
)


def needs_peer(item: pytest.Item) -> bool:
    """True when ``item`` needs a peer, by the rules in this module's docstring."""
    path = Path(str(item.path)).resolve()
    if path.is_relative_to(TESTS_DIR):
        parts = path.relative_to(TESTS_DIR).parts
        if len(parts) > 1 and parts[0] in PEER_SUITES:
            return True
    fixturenames = set(getattr(item, "fixturenames", ()))
    if fixturenames & PEER_FIXTURES:
        return True
    functions: list[Callable[..., Any]] = []
    function = getattr(item, "function", None)
    if function is not None:
        functions.append(function)
    # The fixtures' own code, e.g. one that calls getfixturevalue("redis_server"). Not the
    # parametrized ones: they choose per param, and mark their peer params themselves.
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        functions.extend(d.func for d in defs if d.params is None)
    seen: set[types.CodeType] = set()
    return any(_refers_to_a_peer(f, seen) for f in functions)


def _refers_to_a_peer(function: Callable[..., Any], seen: set[types.CodeType]) -> bool:
    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    if code is None or code in seen:
        return False
    seen.add(code)
    module_globals: dict[str, Any] = getattr(function, "__globals__", {})
    for each in _codes(code):
        if any(isinstance(c, str) and c in PEER_FIXTURES for c in each.co_consts):
            return True
        for name in each.co_names:
            value = module_globals.get(name)
            if value is None:
                continue
            if _is_peer_value(value):
                return True
            # A helper of the same module: what it calls counts as the test's own.
            if inspect.isfunction(value) and value.__module__ == function.__module__:
                if _refers_to_a_peer(value, seen):
                    return True
    return False


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code of every function, lambda or comprehension nested in it."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _is_peer_value(value: object) -> bool:
    if isinstance(value, types.ModuleType):
        return value.__name__ in PEER_MODULES
    if any(value is starter for starter in PEER_STARTERS):
        return True
    # A table of fixture names, e.g. {"redis": "redis_server"} fed to getfixturevalue.
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(isinstance(v, str) and v in PEER_FIXTURES for v in value)
    return False


class PeerGuard:
    """A plugin (registered by tests/conftest.py) that fails a test which set up a peer fixture
    without the ``peer`` marker.

    A plugin, not a conftest hook: pytest asks a session-scoped fixture's hooks of the session's
    node, at the repository root, where tests/conftest.py's hooks do not apply. The test fails
    when it is called, not during the fixture's setup: an exception raised from
    ``pytest_fixture_setup`` leaves pytest's fixture state half-built for the next test.
    ``_pyfuncitem`` is pytest's own name for the test a (sub)request serves; ``request.node``
    would be the session.
    """

    def __init__(self) -> None:
        self._unmarked: dict[str, str] = {}  # test node id -> the peer fixture it set up

    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> None:
        if fixturedef.argname not in PEER_FIXTURES:
            return
        item = getattr(request, "_pyfuncitem", None)
        if item is not None and item.get_closest_marker("peer") is None:
            self._unmarked[item.nodeid] = fixturedef.argname

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        fixture = self._unmarked.pop(item.nodeid, None)
        if fixture is not None:
            pytest.fail(
                f"{item.nodeid} uses the peer fixture {fixture!r} but is not marked 'peer':"
                " mark it (pytest.mark.peer) so that `make unit` leaves it out",
                pytrace=False,
            )
