"""``shoal registry``: run the schema registry on its own, against any Kafka cluster.

The broker serves the registry on its HTTP port already; this is for a Kafka cluster that is
not shoal. The registry keeps its state in a compacted topic (``_schemas``) of that cluster and
replays it at start, as Confluent's registry does.
"""

from __future__ import annotations

import argparse
import logging
import os

from shoal.cli.common import BOOTSTRAP_ENV, CliError, UsageError, command_config, key_value

DEFAULT_LISTEN = "127.0.0.1:8081"
DEFAULT_TOPIC = "_schemas"


def add_registry_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    registry = sub.add_parser(
        "registry",
        help="run the schema registry standalone against a Kafka cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    registry.add_argument(
        "-b",
        "--bootstrap",
        metavar="HOST:PORT",
        default=os.environ.get(BOOTSTRAP_ENV),
        help=f"the Kafka cluster's bootstrap servers (default: ${BOOTSTRAP_ENV})",
    )
    registry.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=DEFAULT_LISTEN,
        help=f"where to serve Confluent's REST API (default {DEFAULT_LISTEN})",
    )
    registry.add_argument(
        "--topic",
        default=DEFAULT_TOPIC,
        help=f"the compacted topic that holds the registry's state (default {DEFAULT_TOPIC})",
    )
    registry.add_argument(
        "-X",
        dest="client_properties",
        metavar="KEY=VALUE",
        type=key_value,
        action="append",
        default=[],
        help="a librdkafka setting of its Kafka clients, e.g. -X security.protocol=SASL_SSL",
    )
    registry.add_argument(
        "--command-config",
        metavar="FILE",
        help="a Kafka tools client properties file for its Kafka clients; -X wins",
    )
    registry.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default="info"
    )
    registry.set_defaults(run=run_registry_command, command_parser=registry)


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def run_registry_command(args: argparse.Namespace) -> int:
    if not args.bootstrap:
        raise UsageError(f"--bootstrap is required (or set ${BOOTSTRAP_ENV})")
    host, port = _listen_address(args.listen)
    # Imported here so that the other commands do not pay for loading the server.
    from shoal.registry import run_registry
    from shoal.registry.log import SchemaLogError

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        run_registry(
            args.bootstrap,
            host=host,
            port=port,
            topic=args.topic,
            client_config=dict(command_config(args) + args.client_properties),
        )
    except SchemaLogError as exc:
        raise CliError(f"cannot load the registry from {args.bootstrap}: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot start: {exc}") from None
    return 0
