"""``shoal demo market|orders``: a worked example end to end in one command. It starts an
embedded broker (or uses ``--bootstrap``), the example's services and its feed, prints what
happens, and stops cleanly.

market: a feed of trades and quotes for ``--seconds`` through a bar service (OHLC and VWAP on
event-time windows) and a quote service (latest-quote table, alerts), with a status line each
second and the bars, alerts and latency per stage at the end. orders: four services run an
order saga (payments, stock, shipping, a dead-lettered order redriven) and print its timeline.
"""

from __future__ import annotations

import argparse
from typing import Final

from shoal.cli.common import CliError

SECONDS_MAX: Final = 3_600.0
"""A demo, not a soak: an hour is already far more than anyone watches."""
RATE_MAX: Final = 1_000_000
"""Events per second of the market feed; beyond what one process generates."""


def add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="run a worked example (market data, order saga) on an embedded broker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("example", choices=["market", "orders"], help="which example")
    demo.add_argument(
        "--bootstrap",
        "-b",
        metavar="HOST:PORT",
        help="use this Kafka-protocol broker instead of an embedded one",
    )
    demo.add_argument(
        "--seconds",
        type=_seconds,
        default=10.0,
        help="market: how long the feed runs (default 10)",
    )
    demo.add_argument(
        "--rate", type=_rate, default=2_000, help="market: events per second (default 2000)"
    )
    demo.add_argument(
        "--registry",
        metavar="URL",
        help="market with --bootstrap: a schema registry for Avro payloads (default: JSON)",
    )
    demo.add_argument("-v", "--verbose", action="store_true", help="show the framework's logs")
    demo.set_defaults(run=run_demo, command_parser=demo)


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= SECONDS_MAX:
        raise argparse.ArgumentTypeError(f"must be in (0, {SECONDS_MAX:g}] seconds")
    return value


def _rate(text: str) -> int:
    value = int(text)
    if not 1 <= value <= RATE_MAX:
        raise argparse.ArgumentTypeError(f"must be in 1..{RATE_MAX} events per second")
    return value


def example_argv(args: argparse.Namespace) -> list[str]:
    """The example's own command line for these options."""
    argv = ["--verbose"] if args.verbose else []
    if args.bootstrap:
        argv += ["--broker", f"kafka://{args.bootstrap}"]
    if args.example == "market":
        argv += ["--seconds", f"{args.seconds:g}", "--rate", str(args.rate), "--live"]
        if args.registry:
            argv += ["--registry", args.registry]
        elif args.bootstrap:
            argv += ["--format", "json"]  # an embedded broker serves its own registry
    return argv


def run_demo(args: argparse.Namespace) -> int:
    from shoal.demo import DemoUnavailable, run

    try:
        return run(args.example, example_argv(args))
    except DemoUnavailable as exc:
        raise CliError(str(exc)) from exc
