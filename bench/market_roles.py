"""The processes of bench/market.py: the feed, and each service of the pipeline, one process
each (each with a core's worth of GIL), talking to the parent in JSON lines.

    python bench/market_roles.py feed  --bootstrap H:P --namespace N --rate R --seconds S --out F
    python bench/market_roles.py stage --bootstrap H:P --namespace N --service quotes --out F

feed: makes the example's feed (examples/market/feed.py, without deliberately delayed events:
their delay would count as latency), sends it paced in real time (with ``--unpaced``, as fast
as it goes) through the framework's Kafka transport, and prints one line
``{"trades": n, "quotes": n, "start_ms": ms, "feed_s": s, "cpu_s": s}``.

stage: runs one service of the example (``quotes``: the latest-quote table, spread alerts and
the trade/quote join; ``bars``: OHLC/VWAP windows) as a stream processor; prints
``{"ready": true}`` once its group gave it its partitions, restored; then reads one line from
stdin, ``{"<topic>": records, ...}``, the records the feed sent, and stops once it handled and
committed them all, printing ``{"handled": n, "cpu_s": s, "run_queue_s": s}`` (from ready to
done: CPU used, and time its threads waited for a core).

Latency samples (exchange timestamp -> the stage, per event) go to ``--out`` as JSON:
``{stage: {"seen": n, "at_ms": [...], "latency_ms": [...]}}``. Both ends read the same clock:
the exchange timestamps are this machine's CLOCK_REALTIME (``time.time()``) in the feed process
when it sends, and a stage's "now" is the same clock in the stage's process.
``--profile FILE`` runs the role under cProfile and writes its statistics there.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the examples package lives at the repository root

from examples.market.feed import FeedSettings, generate  # noqa: E402
from examples.market.formats import JsonPayloads  # noqa: E402
from examples.market.latency import LatencyMonitor  # noqa: E402
from examples.market.pipeline import send_feed  # noqa: E402
from examples.market.services import Topics, bar_service, quote_service  # noqa: E402

from shoal import App  # noqa: E402

WAIT_S_MAX = 300.0
"""A hang guard for a stage waiting for its records, not a timing expectation."""
POLL_S = 0.01


def _run_queue_s() -> float:
    """Seconds this process's threads have waited for a core so far (Linux schedstat, summed
    over its threads; 0 elsewhere): on a loaded machine, a share of every latency."""
    total_ns = 0
    for stat in Path("/proc/self/task").glob("*/schedstat"):
        try:
            total_ns += int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total_ns / 1e9


def _say(doc: dict[str, Any]) -> None:
    print(json.dumps(doc), flush=True)


def _dump(monitor: LatencyMonitor, path: Path) -> None:
    path.write_text(
        json.dumps(
            {
                name: {"seen": s.seen, "at_ms": s.at_ms, "latency_ms": s.samples_ms}
                for name, s in monitor.stages.items()
            }
        )
    )


async def feed(args: argparse.Namespace) -> None:
    topics = Topics(args.namespace)
    settings = FeedSettings(
        rate_per_s=args.rate,
        seconds=args.seconds,
        symbols=8,
        out_of_order_ms_max=0,
        late_share=0.0,
    )
    events = generate(settings, 0)
    app = App(f"kafka://{args.bootstrap}{args.query}", name="market-feed")
    await app.start()
    try:
        await app.transport.ensure_topics([topics.trades, topics.quotes])
        monitor = LatencyMonitor()
        cpu, waited, loop_cpu = time.process_time(), _run_queue_s(), time.thread_time()
        # Exchange time starts at the first send: each event is stamped with the ms of the
        # feed it is due in (its arrival, truncated to the ms: up to 1 ms early).
        feed_s, start_ms = await send_feed(
            app.transport,
            topics,
            events,
            monitor,
            JsonPayloads(),
            realtime=not args.unpaced,
            stamped_at_start=True,
        )
        cpu_s, waited_s = time.process_time() - cpu, _run_queue_s() - waited
        loop_cpu_s = time.thread_time() - loop_cpu
    finally:
        await app.stop()
    _dump(monitor, args.out)
    trades = sum(1 for _, e in events if e.kind == "trade")
    _say(
        {
            "trades": trades,
            "quotes": len(events) - trades,
            "start_ms": start_ms,
            "feed_s": feed_s,
            "cpu_s": cpu_s,
            "loop_cpu_s": loop_cpu_s,
            "run_queue_s": waited_s,
        }
    )


async def stage(args: argparse.Namespace) -> None:
    topics = Topics(args.namespace)
    monitor = LatencyMonitor()
    app = App(f"kafka://{args.bootstrap}{args.query}", name=f"market-{args.service}")
    await app.start()
    try:
        make = quote_service if args.service == "quotes" else bar_service
        proc = make(app.transport, topics, monitor, JsonPayloads())[0]
        stop = asyncio.Event()
        task = asyncio.create_task(proc.run(stop))
        await _until(proc.assigned.is_set, task, "the group's assignment")
        cpu, waited = time.process_time(), _run_queue_s()
        _say({"ready": True})
        loop = asyncio.get_running_loop()
        expected: dict[str, int] = json.loads(await loop.run_in_executor(None, sys.stdin.readline))

        def handled(topic: str) -> int:
            return sum(o for (t, _), o in proc.positions.items() if t == topic)

        await _until(
            lambda: all(handled(t) >= n for t, n in expected.items() if t in proc.topics),
            task,
            "every record the feed sent",
        )
        cpu_s, waited_s = time.process_time() - cpu, _run_queue_s() - waited
        stop.set()
        await task
    finally:
        await app.stop()
    _dump(monitor, args.out)
    _say({"handled": proc.records_handled, "cpu_s": cpu_s, "run_queue_s": waited_s})


async def _until(done: Any, task: asyncio.Task[None], what: str) -> None:
    deadline = time.monotonic() + WAIT_S_MAX
    while not done():
        if task.done():
            task.result()  # the processor died: its error, here
            raise RuntimeError(f"the processor ended before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["feed", "stage"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--out", type=Path, required=True, help="latency samples (JSON)")
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--unpaced", action="store_true", help="send as fast as it goes")
    parser.add_argument("--service", choices=["quotes", "bars"], default="quotes")
    parser.add_argument("--profile", type=Path, help="write cProfile statistics here")
    parser.add_argument("--query", default="", help="appended to the kafka:// URL: ?k=v&...")
    args = parser.parse_args()
    run = feed if args.role == "feed" else stage
    if args.profile is None:
        asyncio.run(run(args))
        return
    # The main thread's CPU time, not the wall clock: on a loaded machine the wall clock
    # charges a function for every moment the process waited for a core.
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        asyncio.run(run(args))
    finally:
        profiler.disable()
        profiler.dump_stats(str(args.profile))


if __name__ == "__main__":
    main()
