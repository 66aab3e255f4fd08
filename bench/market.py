"""The market-data pipeline under load: feed rate reached and latency per stage, on
`shoal broker` and on the Apache Kafka peer in the same run (ratios reported).

    .venv/bin/python bench/market.py [--rates 5000,50000] [--seconds 10] [--systems shoal,kafka]
        [--stages quotes,bars] [--throughput-events 200000] [--profile DIR]
    .venv/bin/python bench/market.py --smoke     # 2 s at 500 events/s on shoal: does it run

Every part is a process of its own, as users run them: the broker (`shoal broker`, or Apache
Kafka), the feed, and each service of examples/market (bench/market_roles.py): ``quotes`` (the
latest-quote table, spread alerts, the trade/quote join) and ``bars`` (OHLC/VWAP windows).
For each system and rate the feed sends in real time, JSON payloads, over kafka://.

Figures: the feed rate reached (events acknowledged per second of feed), and p50/p99/p99.9
from the exchange timestamp to each stage: the broker's ack (in the feed), the quote service
handling a quote (``quote -> table``: the table updated) or a trade (``trade -> join``), the
bar service handling a trade (``trade -> bars``). Latency is taken across processes on one
clock: the feed stamps each event with CLOCK_REALTIME (``time.time()``) in ms when it is due
(truncated: up to 1 ms early), and each stage reads the same clock when it handles it.

Then, unless ``--throughput-events 0``, the throughput run: that many events sent as fast as
the feed goes (unpaced), through the same stages; the rates reached by the feed (acknowledged)
and by each stage (records handled per second from its first to its last), and the pipeline's
(events / from the first send to the last record handled by the slowest stage).

Writes bench/results/market.json and market.png (p99 per second of the quote -> table stage
over time, per system, at the highest rate). Nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the examples package lives at the repository root

from examples.market.latency import LatencyMonitor, Stage  # noqa: E402
from examples.market.services import Topics  # noqa: E402

from peers.systems import kafka_broker, shoal_broker  # type: ignore[import-not-found]  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ROLES = Path(__file__).parent / "market_roles.py"
CHART_STAGE = "quote -> table"
RATIO_STAGES = ("quote -> table", "trade -> bars", "quote -> broker ack")
BUCKET_MS = 1_000
STAGE_QUERY = "?linger.ms=0"
"""The services' producer sends at once: a processor awaits its writes (outputs, then its
state) before it handles the next fetch, so a linger there is a wait on every record's path;
the feed keeps librdkafka's 5 ms, which batches its stream."""
ROLE_TIMEOUT_S = 600.0
"""A hang guard for one role process, not a timing expectation."""


@contextmanager
def broker(system: str, work: Path) -> Iterator[str]:
    if system == "shoal":
        with shoal_broker(work / "shoal") as bootstrap:
            yield bootstrap
    elif system == "kafka":
        with kafka_broker(work / "kafka") as bootstrap:
            yield bootstrap
    else:
        raise SystemExit(f"unknown system {system!r}: shoal or kafka")


def p99_over_time(monitor: LatencyMonitor, stage: str) -> list[tuple[float, float]]:
    """(seconds since the first sample, p99 ms of the samples in that second)."""
    data = monitor.stages.get(stage)
    if data is None or not data.at_ms:
        return []
    start = data.at_ms[0]
    buckets: dict[int, list[float]] = {}
    for at, latency in zip(data.at_ms, data.samples_ms, strict=True):
        buckets.setdefault(int((at - start) // BUCKET_MS), []).append(latency)
    out = []
    for second, values in sorted(buckets.items()):
        values.sort()
        out.append(
            (second * BUCKET_MS / 1_000, values[min(int(0.99 * len(values)), len(values) - 1)])
        )
    return out


class Role:
    """One process of bench/market_roles.py, spoken to in JSON lines."""

    def __init__(self, name: str, argv: list[str], work: Path, profile: Path | None) -> None:
        self.name = name
        self.samples = work / f"{name}.json"
        self.log = work / f"{name}.log"
        extra = ["--profile", str(profile / f"{name}.prof")] if profile is not None else []
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROLES), *argv, "--out", str(self.samples), *extra],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=REPO,
            )

    def read(self) -> dict[str, Any]:
        out: IO[str] | None = self.process.stdout
        line = out.readline() if out is not None else ""
        if not line:
            self.process.wait(ROLE_TIMEOUT_S)
            raise RuntimeError(
                f"{self.name} ended (exit {self.process.returncode}):\n"
                f"{self.log.read_text()[-4000:]}"
            )
        doc: dict[str, Any] = json.loads(line)
        return doc

    def tell(self, doc: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(doc) + "\n")
        self.process.stdin.flush()

    def finish(self) -> None:
        self.process.wait(ROLE_TIMEOUT_S)
        if self.process.returncode != 0:
            raise RuntimeError(f"{self.name} failed:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def monitor_into(self, monitor: LatencyMonitor) -> tuple[float, float, int]:
        """Add this process's samples to ``monitor``; return (first, last) sample time (ms)
        and the events it saw."""
        first, last, seen = float("inf"), 0.0, 0
        for name, data in json.loads(self.samples.read_text()).items():
            stage = Stage(samples_ms=data["latency_ms"], at_ms=data["at_ms"], seen=data["seen"])
            monitor.stages[name] = stage
            seen += stage.seen
            if stage.at_ms:
                first, last = min(first, min(stage.at_ms)), max(last, max(stage.at_ms))
        return first, last, seen


def run_one(
    bootstrap: str,
    work: Path,
    *,
    rate: int,
    seconds: float,
    stages: list[str],
    unpaced: bool = False,
    profile: Path | None = None,
    stage_query: str = "",
) -> dict[str, Any]:
    """The feed and each stage as processes of their own; figures and latency samples."""
    label = f"{'max' if unpaced else rate}"
    namespace = f"bench-{label}-{uuid.uuid4().hex[:6]}."
    work.mkdir(parents=True, exist_ok=True)
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    common = ["--bootstrap", bootstrap, "--namespace", namespace]
    with ExitStack() as cleanup:
        services = []
        for service in stages:
            argv = ["stage", *common, "--service", service, "--query", stage_query]
            role = Role(service, argv, work, profile)
            cleanup.callback(role.stop)
            services.append(role)
        for role in services:
            role.read()  # {"ready": true}: in its group, partitions assigned
        pace = ["--unpaced"] if unpaced else []
        argv = ["feed", *common, "--rate", str(rate), "--seconds", str(seconds), *pace]
        feed = Role("feed", argv, work, profile)
        cleanup.callback(feed.stop)
        sent = feed.read()
        feed.finish()
        topics = Topics(namespace)
        for role in services:
            role.tell({topics.trades: sent["trades"], topics.quotes: sent["quotes"]})
        done = {role.name: role.read() for role in services}
        for role in services:
            role.finish()
        monitor = LatencyMonitor()
        feed.monitor_into(monitor)
        events = sent["trades"] + sent["quotes"]
        per_stage: dict[str, Any] = {}
        last_handled = 0.0
        for role in services:
            first, last, seen = role.monitor_into(monitor)
            last_handled = max(last_handled, last)
            span_s = (last - first) / 1_000
            per_stage[role.name] = {
                **done[role.name],
                "rate": seen / span_s if span_s > 0 else 0.0,
                "cpu_per_record_us": done[role.name]["cpu_s"] / max(seen, 1) * 1e6,
            }
    pipeline_s = (last_handled - sent["start_ms"]) / 1_000
    return {
        "rate_asked": None if unpaced else rate,
        "events": events,
        "trades": sent["trades"],
        "rate_reached": events / sent["feed_s"] if sent["feed_s"] else 0.0,
        "feed_cpu_per_event_us": sent["cpu_s"] / events * 1e6,
        "feed_s": sent["feed_s"],
        "feed_run_queue_s": sent["run_queue_s"],
        "pipeline_rate": events / pipeline_s if pipeline_s > 0 else 0.0,
        "services": per_stage,
        "stages": monitor.summary(),
        "timeline": p99_over_time(monitor, CHART_STAGE),
    }


def _print_row(system: str, row: dict[str, Any]) -> None:
    asked = "max" if row["rate_asked"] is None else f"{row['rate_asked']:,}/s"
    print(
        f"{system:<6} asked {asked:>9} feed reached {row['rate_reached']:>9,.0f}/s "
        f"({row['feed_cpu_per_event_us']:.1f} us CPU/event; waited for a core "
        f"{row['feed_run_queue_s']:.1f} s of {row['feed_s']:.1f} s); pipeline "
        f"{row['pipeline_rate']:>9,.0f}/s"
    )
    for name, fig in row["services"].items():
        print(
            f"    service {name:<7} {fig['handled']:>9,} records  {fig['rate']:>9,.0f}/s  "
            f"{fig['cpu_per_record_us']:.1f} us CPU/record; waited for a core "
            f"{fig['run_queue_s']:.1f} s"
        )
    for stage, fig in row["stages"].items():
        print(
            f"    {stage:<22} p50 {fig['p50']:8.2f} ms  p99 {fig['p99']:8.2f} ms  "
            f"p99.9 {fig['p99.9']:8.2f} ms"
        )


def ratios(shoal: list[dict[str, Any]], kafka: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ours, theirs in zip(shoal, kafka, strict=True):
        label = "max" if ours["rate_asked"] is None else str(ours["rate_asked"])
        row = {
            "rate_reached shoal/kafka": ours["rate_reached"] / theirs["rate_reached"],
            "pipeline_rate shoal/kafka": ours["pipeline_rate"] / theirs["pipeline_rate"],
        }
        for stage in RATIO_STAGES:
            if stage in ours["stages"] and stage in theirs["stages"]:
                for pct in ("p50", "p99"):
                    row[f"{pct} {stage} shoal/kafka"] = (
                        ours["stages"][stage][pct] / theirs["stages"][stage][pct]
                    )
        out[label] = row
    return out


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for system, runs in results["systems"].items():
        paced = [r for r in runs if r["rate_asked"] is not None]
        if not paced:
            continue
        top = max(paced, key=lambda r: r["rate_asked"])
        xs = [t for t, _ in top["timeline"]]
        ys = [v for _, v in top["timeline"]]
        ax.plot(xs, ys, marker="o", label=f"{system} @ {top['rate_asked']:,}/s")
    ax.set_xlabel("seconds into the feed")
    ax.set_ylabel(f"p99 latency, {CHART_STAGE} (ms)")
    ax.set_title("Market data: exchange timestamp to latest-quote table, p99 per second")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="5000,50000", help="events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--systems", default="shoal,kafka")
    parser.add_argument("--stages", default="quotes,bars", help="services, each a process")
    parser.add_argument(
        "--throughput-events",
        type=int,
        default=200_000,
        help="events of the unpaced throughput run (0: none)",
    )
    parser.add_argument(
        "--stage-query",
        default=STAGE_QUERY,
        help=f"librdkafka settings of the services' kafka:// URL (default {STAGE_QUERY!r})",
    )
    parser.add_argument("--profile", type=Path, help="cProfile every role; statistics here")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help="2 s at 500/s on shoal only")
    args = parser.parse_args()
    rates = [500] if args.smoke else [int(r) for r in args.rates.split(",")]
    seconds = 2.0 if args.smoke else args.seconds
    systems = ["shoal"] if args.smoke else args.systems.split(",")
    stages = [s for s in args.stages.split(",") if s]
    throughput = 2_000 if args.smoke else args.throughput_events
    results: dict[str, Any] = {
        "config": {
            "stage_query": args.stage_query,
            "rates": rates,
            "seconds": seconds,
            "stages": stages,
            "throughput_events": throughput,
        },
        "systems": {},
    }
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shoal-bench-market-") as tmp:
        for system in systems:
            with broker(system, Path(tmp)) as bootstrap:
                runs = [(rate, False) for rate in rates]
                if throughput:
                    runs.append((throughput, True))  # the exchange clock at 1 s for all
                for rate, unpaced in runs:
                    name = f"{system}-{'max' if unpaced else rate}"
                    row = run_one(
                        bootstrap,
                        Path(tmp) / name,
                        rate=rate,
                        seconds=1.0 if unpaced else seconds,
                        stages=stages,
                        unpaced=unpaced,
                        profile=args.profile / name if args.profile else None,
                        stage_query=args.stage_query,
                    )
                    results["systems"].setdefault(system, []).append(row)
                    _print_row(system, row)
    if "shoal" in results["systems"] and "kafka" in results["systems"]:
        results["ratios"] = ratios(results["systems"]["shoal"], results["systems"]["kafka"])
        print(json.dumps(results["ratios"], indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "market.json").write_text(json.dumps(results, indent=2) + "\n")
    write_chart(results, args.out / "market.png")
    print(f"wrote {args.out / 'market.json'} and {args.out / 'market.png'}")


if __name__ == "__main__":
    main()
