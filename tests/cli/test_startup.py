"""What ``shoal`` imports before a command runs: every ``shoal`` process pays it (a user's, and
each one the tests start), so building the parser must not import the client libraries and the
protocol's message classes; only the chosen command's module is imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shoal.cli import build_parser

HEAVY: tuple[str, ...] = (
    "kio",  # the protocol's message classes (it imports hypothesis too)
    "shoal.protocol",
    "confluent_kafka",
    "httpx",
    "cryptography",
    "shoal.app",
    "shoal.storage",
)
"""Modules that take tens to hundreds of ms to import."""

_PROBE = """
import json, sys
from shoal.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("\\n" + json.dumps(sorted(sys.modules)) + "\\n")
"""


def imported_by(*argv: str) -> set[str]:
    """The heavy modules (and their submodules) a fresh ``shoal *argv`` process imported."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stderr.splitlines()[-1])
    return {h for h in HEAVY for m in modules if m == h or m.startswith(h + ".")}


@pytest.mark.parametrize("argv", [("--version",), ("--help",)])
def test_version_and_help_import_no_client_library(argv: tuple[str, ...]) -> None:
    assert imported_by(*argv) == set()


def test_a_command_imports_only_what_it_uses() -> None:
    # topic commands talk through confluent-kafka; the protocol's classes (only `shoal group`
    # and `shoal txn` send requests of their own) and httpx (only a compacted topic's
    # describe reads the broker's metrics) are not loaded to parse them.
    assert imported_by("topic", "list", "--help") == {"confluent_kafka"}
    assert imported_by("user", "hash", "--help") == {"confluent_kafka"}


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser(["--version"], every_command=False).parse_args(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("shoal ") and out.strip() != "shoal unknown"


def test_the_help_without_the_command_modules_is_the_full_help() -> None:
    # The command table in shoal/cli/__init__.py repeats each command's help line: it must say
    # what the command's own parser says, and list every command in the same order.
    assert build_parser([], every_command=False).format_help() == build_parser().format_help()


def test_only_the_chosen_command_is_built() -> None:
    parser = build_parser(["topic", "list"], every_command=False)
    args = parser.parse_args(["topic", "list", "--bootstrap", "127.0.0.1:9"])
    assert args.topic_command == "list" and callable(args.run)
