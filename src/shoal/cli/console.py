"""``shoal console``: the web console against any Kafka cluster (shoal or Apache Kafka).

The broker serves the console at / of its HTTP port already; this runs it as a Kafka client
of another cluster, with the schema registry at --registry (Confluent's API) if given. It
serves plain HTTP with no authentication of its own: keep --listen on loopback, or put it
behind a proxy that authenticates.
"""

from __future__ import annotations

import argparse
import os

from shoal.cli.common import BOOTSTRAP_ENV, UsageError, command_config, key_value

DEFAULT_LISTEN = "127.0.0.1:8090"


def add_console_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    console = sub.add_parser(
        "console",
        help="serve the web console for a Kafka cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    console.add_argument(
        "-b",
        "--bootstrap",
        metavar="HOST:PORT",
        default=os.environ.get(BOOTSTRAP_ENV),
        help=f"the Kafka cluster's bootstrap servers (default: ${BOOTSTRAP_ENV})",
    )
    console.add_argument(
        "--registry", metavar="URL", help="the schema registry's URL (Confluent's REST API)"
    )
    console.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=DEFAULT_LISTEN,
        help=f"where to serve the console (default {DEFAULT_LISTEN}; port 0 picks a free one)",
    )
    console.add_argument(
        "-X",
        dest="client_properties",
        metavar="KEY=VALUE",
        type=key_value,
        action="append",
        default=[],
        help="a librdkafka setting of its Kafka clients, e.g. -X security.protocol=SASL_SSL",
    )
    console.add_argument(
        "--command-config",
        metavar="FILE",
        help="a Kafka tools client properties file for its Kafka clients; -X wins",
    )
    console.set_defaults(run=run_console_command, command_parser=console)


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def run_console_command(args: argparse.Namespace) -> int:
    if not args.bootstrap:
        raise UsageError(f"--bootstrap is required (or set ${BOOTSTRAP_ENV})")
    host, port = _listen_address(args.listen)
    # Imported here so that the other commands do not pay for loading the web stack.
    from shoal.console.serve import serve

    config = {
        "bootstrap.servers": args.bootstrap,
        **dict(command_config(args) + args.client_properties),
    }
    serve(config, args.registry, host, port)
    return 0
