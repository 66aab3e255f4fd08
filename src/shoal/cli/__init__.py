"""The ``shoal`` command line: the broker, and Kafka-protocol client tools (see ``shoal --help``).

Client commands follow the conventions of kcat, rpk and Kafka's own tools. A user error (an
unknown topic, an unreachable broker) is one line on stderr and exit code 1; flags that do not
parse or do not go together give the usage and exit code 2. Neither prints a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from shoal.cli.acl import add_acl_parser
from shoal.cli.bench import add_bench_parser  # issue 20 (market data): shoal bench
from shoal.cli.broker import add_broker_parser
from shoal.cli.common import CliError, UsageError
from shoal.cli.console import add_console_parser  # issue 17 (web console): shoal console
from shoal.cli.consume import add_consume_parser
from shoal.cli.dlq import add_dlq_parser
from shoal.cli.docs import add_docs_parser
from shoal.cli.group import add_group_parser
from shoal.cli.produce import add_produce_parser
from shoal.cli.registry import add_registry_parser
from shoal.cli.run import add_run_parser
from shoal.cli.schema import add_schema_parser
from shoal.cli.top import add_top_parser  # issue 17: shoal top
from shoal.cli.topic import add_topic_parser
from shoal.cli.txn import add_txn_parser  # issue 14 (transactions): shoal txn
from shoal.cli.user import add_user_parser

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoal", description=__doc__)
    parser.add_argument("--version", action="version", version=f"shoal {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_broker_parser(sub)
    add_topic_parser(sub)
    add_produce_parser(sub)
    add_consume_parser(sub)
    add_group_parser(sub)
    add_schema_parser(sub)
    add_registry_parser(sub)
    add_run_parser(sub)
    add_docs_parser(sub)
    add_dlq_parser(sub)
    add_user_parser(sub)
    add_acl_parser(sub)
    add_txn_parser(sub)  # issue 14 (transactions)
    add_bench_parser(sub)  # issue 20 (market data)
    add_console_parser(sub)  # issue 17 (web console)
    add_top_parser(sub)  # issue 17
    return parser


def _version() -> str:
    try:
        return metadata.version("shoal")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
