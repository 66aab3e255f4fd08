"""The market-data pipeline under load: feed rate reached and latency per stage, on
`shoal broker` and on the Apache Kafka peer in the same run (ratios reported).

    .venv/bin/python bench/market.py [--rates 5000,50000] [--seconds 10] [--systems shoal,kafka]
    .venv/bin/python bench/market.py --smoke     # 2 s at 500 events/s on shoal: does it run

For each system and rate, the example's pipeline (examples/market: feed, bar service, quote
service) runs in real time through the system's broker, reached over kafka:// (a separate
process, as users run it). Figures: the feed rate reached (events acknowledged per second of
feed), and p50/p99/p99.9 from the exchange timestamp to each stage. Writes
bench/results/market.json and market.png (p99 per second of the quote -> table stage over
time, per system, at the highest rate). Nothing here asserts speed.

What it cannot show yet: the issue's goal of 200,000 quotes/s through one Python processing
stage; a run says what this machine reaches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the examples package lives at the repository root

from examples.market.feed import FeedSettings  # noqa: E402
from examples.market.latency import LatencyMonitor  # noqa: E402
from examples.market.pipeline import run_pipeline  # noqa: E402

from peers.systems import kafka_broker, shoal_broker  # type: ignore[import-not-found]  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CHART_STAGE = "quote -> table"
BUCKET_MS = 1_000


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


def run_one(bootstrap: str, rate: int, seconds: float) -> dict[str, Any]:
    # No deliberately delayed events here: their delay would be counted as latency.
    settings = FeedSettings(
        rate_per_s=rate, seconds=seconds, symbols=8, out_of_order_ms_max=0, late_share=0.0
    )
    # JSON payloads: the bench measures the brokers, not Avro encoding (and needs no registry).
    run = asyncio.run(
        run_pipeline(
            f"kafka://{bootstrap}",
            settings,
            namespace=f"bench-{rate}.",
            realtime=True,
            fmt="json",
        )
    )
    events = run.produced["trades"] + run.produced["quotes"]
    return {
        "rate_asked": rate,
        "events": events,
        "rate_reached": events / run.feed_s if run.feed_s else 0.0,
        "stages": run.latency.summary(),
        "timeline": p99_over_time(run.latency, CHART_STAGE),
    }


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for system, runs in results["systems"].items():
        top = max(runs, key=lambda r: r["rate_asked"])
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
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help="2 s at 500/s on shoal only")
    args = parser.parse_args()
    rates = [500] if args.smoke else [int(r) for r in args.rates.split(",")]
    seconds = 2.0 if args.smoke else args.seconds
    systems = ["shoal"] if args.smoke else args.systems.split(",")
    results: dict[str, Any] = {"config": {"rates": rates, "seconds": seconds}, "systems": {}}
    with tempfile.TemporaryDirectory(prefix="shoal-bench-market-") as tmp:
        for system in systems:
            with broker(system, Path(tmp)) as bootstrap:
                for rate in rates:
                    row = run_one(bootstrap, rate, seconds)
                    results["systems"].setdefault(system, []).append(row)
                    stages = row["stages"]
                    print(f"{system:<6} asked {rate:>7,}/s reached {row['rate_reached']:>10,.0f}/s")
                    for stage, fig in stages.items():
                        print(
                            f"    {stage:<22} p50 {fig['p50']:8.2f} ms  p99 {fig['p99']:8.2f} ms  "
                            f"p99.9 {fig['p99.9']:8.2f} ms"
                        )
    if "shoal" in results["systems"] and "kafka" in results["systems"]:
        ratios = {}
        for ours, theirs in zip(
            results["systems"]["shoal"], results["systems"]["kafka"], strict=True
        ):
            stage = "trade -> bars"
            ratios[str(ours["rate_asked"])] = {
                "rate_reached shoal/kafka": ours["rate_reached"] / theirs["rate_reached"],
                f"p99 {stage} shoal/kafka": ours["stages"][stage]["p99"]
                / theirs["stages"][stage]["p99"],
            }
        results["ratios"] = ratios
        print(json.dumps(ratios, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "market.json").write_text(json.dumps(results, indent=2) + "\n")
    write_chart(results, args.out / "market.png")
    print(f"wrote {args.out / 'market.json'} and {args.out / 'market.png'}")


if __name__ == "__main__":
    main()
