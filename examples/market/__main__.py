"""``python -m examples.market [--rate N] [--seconds S] [--broker URL] [--registry URL]
[--format avro|json] [--csv FILE]``: run the market-data pipeline in real time and print its
bars, alerts and latency per stage."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from examples.market.bars import BAR_WINDOWS
from examples.market.feed import TICKS_PER_UNIT, FeedSettings
from examples.market.formats import FORMATS
from examples.market.latency import LatencyMonitor, Stage, percentile
from examples.market.pipeline import MarketRun, PipelineTimeout, run_pipeline, run_replay


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.market", description=__doc__)
    parser.add_argument("--rate", type=int, default=2_000, help="events per second (default 2000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="feed length (default 5)")
    parser.add_argument("--symbols", type=int, default=4, help="symbols traded (1-8)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--csv", type=Path, help="replay this CSV (kind,symbol,ts,price,...)")
    parser.add_argument(
        "--broker",
        help="broker URL (kafka://HOST:PORT, embedded://PATH); default: an embedded broker "
        "in a temporary directory",
    )
    parser.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        help="send the feed without pacing it to its rate (latency then measures queueing)",
    )
    parser.add_argument(
        "--exactly-once",
        action="store_true",
        help="the services commit each fetch's outputs, state and offsets in a transaction",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="avro",
        help="payloads: Avro with schemas in the registry (default) or JSON",
    )
    parser.add_argument(
        "--registry",
        help="schema registry URL for Avro (default: the embedded broker's; with --broker, "
        "required: e.g. `shoal registry --bootstrap HOST:PORT`)",
    )
    parser.add_argument(
        "--namespace",
        help="topic prefix (default: none on the embedded broker, a random one with --broker)",
    )
    parser.add_argument(
        "--replay-from",
        type=_time_ms,
        metavar="ISO|MS",
        help="no feed: recompute the bars from the trades already in --namespace's topics, "
        "from this time (ISO 8601, UTC unless it says otherwise, or ms since the epoch)",
    )
    parser.add_argument(
        "--live", action="store_true", help="print a status line every second while it runs"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the framework's logs")
    args = parser.parse_args(argv)
    if args.replay_from is not None and args.broker is None:
        parser.error("--replay-from needs --broker (the default embedded broker starts empty)")
    embedded = args.broker is None or args.broker.startswith("embedded://")
    if args.format == "avro" and not embedded and args.registry is None:
        parser.error("--format avro with --broker needs --registry URL (or use --format json)")
    return args


def _time_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not ISO 8601 or ms since the epoch: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000)


def _price(ticks: float) -> str:
    return f"{ticks / TICKS_PER_UNIT:,.4f}"


def _report(run: MarketRun) -> None:
    print(f"Feed: {run.produced['trades']} trades, {run.produced['quotes']} quotes")
    by_series = Counter(bar["series"] for bar in run.bars)
    # Every series in its configured order (shortest window first), zeros included: a 1 m bar
    # closes only when the run crosses a minute, and sorting by name put it first when it did.
    print(f"Bars published: { {series: by_series[series] for series in BAR_WINDOWS} }")
    print("Last closed 1 s bar per symbol:")
    last: dict[str, dict[str, object]] = {}
    for bar in run.bars:
        if bar["series"] == "1s":
            last[bar["symbol"]] = bar
    for symbol, bar in sorted(last.items()):
        print(
            f"  {symbol:<5} O {_price(bar['o'])}  H {_price(bar['h'])}  L {_price(bar['l'])}  "  # type: ignore[arg-type]
            f"C {_price(bar['c'])}  VWAP {_price(bar['vwap'])}  trades {bar['n']}"  # type: ignore[arg-type]
        )
    kinds = Counter(alert["alert"] for alert in run.alerts)
    print(f"Alerts: {dict(kinds)}; late trades sent aside: {len(run.late_seqs)}")
    print("\nLatency from exchange timestamp (bar stages: from the window's end):")
    print(run.latency.render())


async def _main(args: argparse.Namespace, workdir: Path) -> int:
    broker = args.broker or f"embedded://{workdir / 'broker'}"
    namespace = args.namespace
    if namespace is None:
        namespace = "" if args.broker is None else f"market-{uuid.uuid4().hex[:8]}."
    if args.replay_from is not None:
        bars = await run_replay(
            broker,
            args.replay_from,
            namespace=namespace,
            fmt=args.format,
            registry_url=args.registry,
        )
        by_series = Counter(bar["series"] for bar in bars)
        print(f"Replayed from {args.replay_from} ms: bars {dict(sorted(by_series.items()))}")
        return 0
    settings = FeedSettings(
        rate_per_s=args.rate, seconds=args.seconds, symbols=args.symbols, seed=args.seed
    )
    print(f"Market data on {broker}: {args.rate}/s for {args.seconds} s, {args.format}")
    monitor = LatencyMonitor()
    live = asyncio.create_task(_live(monitor)) if args.live else None
    try:
        run = await run_pipeline(
            broker,
            settings,
            namespace=namespace,
            realtime=not args.as_fast_as_possible,
            csv_path=args.csv,
            exactly_once=frozenset({"bars", "quotes"}) if args.exactly_once else frozenset(),
            fmt=args.format,
            registry_url=args.registry,
            monitor=monitor,
        )
    except PipelineTimeout as exc:
        print(f"HUNG: {exc}")
        return 2
    finally:
        if live is not None:
            live.cancel()
    print()
    _report(run)
    return 0


LIVE_INTERVAL_S = 1.0


async def _live(monitor: LatencyMonitor) -> None:
    """One line a second: events the broker acknowledged, records each service handled, bars
    closed, and the p99 from exchange time to the bar service over that second; before the
    feed starts, what the pipeline is waiting for."""
    started = time.monotonic()
    seen_bars = 0
    while True:
        await asyncio.sleep(LIVE_INTERVAL_S)
        if monitor.setting_up is not None:
            print(f"{time.monotonic() - started:5.0f} s  waiting: {monitor.setting_up}", flush=True)
            continue
        stages = monitor.stages

        def seen(*names: str, stages: dict[str, Stage] = stages) -> int:
            return sum(stages[n].seen for n in names if n in stages)

        acked = seen("trade -> broker ack", "quote -> broker ack")
        closed = sum(s.seen for n, s in stages.items() if n.startswith("bar "))
        bars = stages.get("trade -> bars")
        recent: list[float] = []
        if bars is not None:
            seen_bars = min(seen_bars, len(bars.samples_ms))  # samples thinned meanwhile
            recent, seen_bars = sorted(bars.samples_ms[seen_bars:]), len(bars.samples_ms)
        p99 = f"{percentile(recent, 99.0):.1f} ms" if recent else "-"
        print(
            f"{time.monotonic() - started:5.0f} s  acked {acked:>8,}  bars service "
            f"{seen('trade -> bars'):>8,}  quotes service "
            f"{seen('quote -> table', 'trade -> join'):>8,}  bars closed {closed:>6,}  "
            f"p99 trade->bars {p99}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with tempfile.TemporaryDirectory(prefix="shoal-market-") as tmp:
        return asyncio.run(_main(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
