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
SECONDS_DEFAULT: Final = 10.0
RATE_DEFAULT: Final = 2_000
MARKET_ONLY: Final = ("seconds", "rate", "registry")
"""Options of the market demo alone: the orders demo runs a fixed saga (six orders, a duplicate
and a redrive) with no feed to time or pace, so it refuses them rather than ignore them."""


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
        help=f"market only: how long the feed runs (default {SECONDS_DEFAULT:g})",
    )
    demo.add_argument(
        "--rate", type=_rate, help=f"market only: events per second (default {RATE_DEFAULT})"
    )
    demo.add_argument(
        "--registry",
        metavar="URL",
        help="market only, with --bootstrap: a schema registry for Avro payloads (default: JSON)",
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


def misplaced_options(args: argparse.Namespace) -> list[str]:
    """The market-only options given to another example."""
    if args.example == "market":
        return []
    return [f"--{name}" for name in MARKET_ONLY if getattr(args, name) is not None]


def example_argv(args: argparse.Namespace) -> list[str]:
    """The example's own command line for these options."""
    argv = ["--verbose"] if args.verbose else []
    if args.bootstrap:
        argv += ["--broker", f"kafka://{args.bootstrap}"]
    if args.example == "market":
        seconds = SECONDS_DEFAULT if args.seconds is None else args.seconds
        rate = RATE_DEFAULT if args.rate is None else args.rate
        argv += ["--seconds", f"{seconds:g}", "--rate", str(rate), "--live"]
        if args.registry:
            argv += ["--registry", args.registry]
        elif args.bootstrap:
            argv += ["--format", "json"]  # an embedded broker serves its own registry
    return argv


def run_demo(args: argparse.Namespace) -> int:
    from shoal.demo import DemoUnavailable, run

    misplaced = misplaced_options(args)
    if misplaced:
        args.command_parser.error(
            f"{' and '.join(misplaced)}: only for the market demo (the {args.example} demo runs "
            "a fixed saga of six orders, with no feed to time or pace)"
        )
    try:
        return run(args.example, example_argv(args))
    except DemoUnavailable as exc:
        raise CliError(str(exc)) from exc
