"""The ``shoal`` command line: the broker, and Kafka-protocol client tools (see ``shoal --help``).

Client commands follow the conventions of kcat, rpk and Kafka's own tools. A user error (an
unknown topic, an unreachable broker) is one line on stderr and exit code 1; flags that do not
parse or do not go together give the usage and exit code 2. Neither prints a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from shoal.cli.errors import CliError, UsageError

__all__ = ["build_parser", "main"]


@dataclass(frozen=True, slots=True)
class _Command:
    """A subcommand, named without importing its module: ``add`` (in ``module``) builds its
    parser. ``help`` is the line ``shoal --help`` shows; it must equal the one ``add`` gives
    (tests/cli/test_startup.py compares the two help screens)."""

    name: str
    module: str
    add: str
    help: str


# A command's module imports its client libraries (confluent-kafka, httpx, the framework, the
# protocol's message classes: a few hundred ms together), so only the chosen command's module
# is imported: `shoal --version`, `shoal --help` and each command pay only for what they use.
_COMMANDS: Final = (
    _Command("broker", "shoal.cli.broker", "add_broker_parser", "run the broker"),
    _Command(
        "topic",
        "shoal.cli.topic",
        "add_topic_parser",
        "create, list, describe, alter and delete topics",
    ),
    _Command(
        "produce",
        "shoal.cli.produce",
        "add_produce_parser",
        "produce lines of standard input as records",
    ),
    _Command("consume", "shoal.cli.consume", "add_consume_parser", "print records of a topic"),
    _Command(
        "group",
        "shoal.cli.group",
        "add_group_parser",
        "list, describe, reset offsets of and delete groups",
    ),
    _Command(
        "schema",
        "shoal.cli.schema",
        "add_schema_parser",
        "register, get, list, check and delete schemas in a schema registry",
    ),
    _Command(
        "registry",
        "shoal.cli.registry",
        "add_registry_parser",
        "run the schema registry standalone against a Kafka cluster",
    ),
    _Command("run", "shoal.cli.run", "add_run_parser", "run a shoal App until SIGTERM/SIGINT"),
    _Command("docs", "shoal.cli.docs", "add_docs_parser", "generate documentation of a shoal App"),
    _Command("dlq", "shoal.cli.dlq", "add_dlq_parser", "list, show and redrive dead-letter topics"),
    _Command(
        "user",
        "shoal.cli.user",
        "add_user_parser",
        "create, list, delete SCRAM users and change passwords",
    ),
    _Command(
        "acl", "shoal.cli.acl", "add_acl_parser", "add, list and remove ACLs (as kafka-acls.sh)"
    ),
    _Command(  # issue 14 (transactions)
        "txn",
        "shoal.cli.txn",
        "add_txn_parser",
        "list and describe transactions (kafka-transactions.sh)",
    ),
    _Command(  # issue 20 (market data)
        "bench",
        "shoal.cli.bench",
        "add_bench_parser",
        "producer, consumer and end-to-end performance tests",
    ),
    _Command(  # issue 17 (web console)
        "console",
        "shoal.cli.console",
        "add_console_parser",
        "serve the web console for a Kafka cluster",
    ),
    _Command(  # issue 17
        "top",
        "shoal.cli.top",
        "add_top_parser",
        "live rates per topic and lag per consumer group",
    ),
    _Command(  # issue 20 (shoal demo)
        "demo",
        "shoal.cli.demo",
        "add_demo_parser",
        "run a worked example (market data, order saga) on an embedded broker",
    ),
)


def build_parser(
    argv: Sequence[str] | None = None, *, every_command: bool = True
) -> argparse.ArgumentParser:
    """The ``shoal`` parser. With ``every_command`` false, only the command ``argv`` names is
    built in full (its module imported); the others are bare entries for ``shoal --help``."""
    chosen = None if every_command else _chosen_command(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="shoal", description=__doc__)
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        if every_command or command.name == chosen:
            add: Callable[[Any], object] = getattr(
                importlib.import_module(command.module), command.add
            )
            add(sub)
        else:
            sub.add_parser(command.name, help=command.help, add_help=False)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    # The top-level parser has no option that takes a value (only -h and --version), so its
    # first positional word is the command.
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


class _VersionAction(argparse.Action):
    """``--version``, reading the installed version only when asked for: importlib.metadata
    alone costs tens of ms at start-up, paid by every command otherwise."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(
            option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, help=help
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"shoal {_version()}")
        parser.exit()


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("shoal")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv, every_command=False)
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    command = " ".join(
        word
        for word in (
            args.command,
            getattr(args, "topic_command", None),
            getattr(args, "group_command", None),
            getattr(args, "schema_command", None),
            getattr(args, "dlq_command", None),
            getattr(args, "docs_command", None),
            getattr(args, "user_command", None),
            getattr(args, "txn_command", None),
            getattr(args, "bench_command", None),  # issue 20 (market data)
        )
        if word
    )
    try:
        return run(args)
    except UsageError as exc:
        command_parser: argparse.ArgumentParser = args.command_parser
        command_parser.error(str(exc))  # prints the command's usage; exits with 2
    except CliError as exc:
        print(f"shoal {command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`shoal consume t | head`): not an error. Point stdout at
        # /dev/null so that the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130  # the shell's convention for "stopped by SIGINT"
