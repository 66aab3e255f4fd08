"""acks=all produce over many partitions: what parallel fsyncs give, old code against new.

One confluent-kafka producer (acks=all, idempotent, linger.ms 1) sends 100 B records round-robin
over a topic of ``--partitions`` partitions for ``--seconds``, against a ``shoal broker`` child
process with default settings (flush policy sync: each partition's batch is answered after its
fsync). librdkafka puts every partition's batch into one Produce request, which is answered once
all of them are durable: with one flusher thread that is one fsync per partition in a row, with
parallel fsyncs about one fsync's time for up to 8 of them.

``--variants name=path,...`` runs the broker from each source tree in turn (``PYTHONPATH``), in
interleaved pairs (A B, then B A, ...) so that a change of the machine's load falls on both;
without it, the installed shoal only. Reported per run: records/s, the broker's Produce request
mean time and its flushes (``shoal_fsync_duration_seconds``) per second with their mean
duration, from the broker's own metrics; then medians (min, max) per variant and the ratio.

    python bench/flush.py --variants old=/tmp/old/src,new=src --partitions 8,32 --pairs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench.peers and tests.peers import from root

from bench.peers.report import environment  # noqa: E402
from bench.transactions import create_topics, scrape  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

RESULTS: Final = ROOT / "bench" / "results"
RECORD: Final = b"x" * 100
PRODUCER: Final[dict[str, Any]] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 1,
    "compression.type": "none",
    "queue.buffering.max.messages": 1_000_000,
    "log_level": 0,
}
TIMEOUT_S: Final = 60.0


def run_once(
    bootstrap: str, http: str, topic: str, partitions: int, seconds: float
) -> dict[str, Any]:
    create_topics(bootstrap, [topic], partitions)
    failures: list[str] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            **PRODUCER,
            "on_delivery": lambda error, _message: error and failures.append(str(error)),
        }
    )
    before = scrape(http)
    sent = 0
    began = time.perf_counter()
    end = began + seconds
    while time.perf_counter() < end:
        for _ in range(1_000):
            try:
                producer.produce(topic, RECORD, partition=sent % partitions)
                sent += 1
            except BufferError:
                producer.poll(0.001)
        producer.poll(0)
    left = producer.flush(TIMEOUT_S)
    elapsed = time.perf_counter() - began
    after = scrape(http)
    if left or failures:
        raise RuntimeError(f"{left} unsent, {len(failures)} failed: {failures[:3]}")

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    return {
        "records_per_s": sent / elapsed,
        "produce_mean_ms": delta("Produce_sum") / max(1.0, delta("Produce_count")) * 1000,
        "produce_requests": delta("Produce_count"),
        "fsyncs_per_s": delta("fsync_count") / elapsed,
        "fsync_mean_ms": delta("fsync_sum") / max(1.0, delta("fsync_count")) * 1000,
    }


def measure(src: str | None, work: Path, partitions: int, seconds: float) -> dict[str, Any]:
    from bench.peers.systems import shoal_process
    from tests.peers.kafka_peer import free_port

    saved = os.environ.get("PYTHONPATH")
    if src is not None:
        os.environ["PYTHONPATH"] = os.path.abspath(src)
    try:
        bootstrap = f"127.0.0.1:{free_port()}"
        with shoal_process(work, ["--kafka-listen", bootstrap]) as http:
            return run_once(bootstrap, http, f"flush-{partitions}", partitions, seconds)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", help="name=source tree,... (default: the installed shoal)")
    parser.add_argument("--partitions", default="8,32", help="comma-separated (8,32)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of a run (5)")
    parser.add_argument("--pairs", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where flush.json goes")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    variants: list[tuple[str, str | None]] = [("installed", None)]
    if args.variants:
        variants = [
            (name, path) for name, _, path in (v.partition("=") for v in args.variants.split(","))
        ]
    results: dict[str, Any] = {"environment": environment(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="shoal-flush-bench-", dir=args.dir) as work:
        for partitions in [int(p) for p in args.partitions.split(",")]:
            for pair in range(args.pairs):
                order = variants if pair % 2 == 0 else variants[::-1]
                for name, src in order:
                    got = measure(
                        src, Path(work) / f"{name}-{partitions}-{pair}", partitions, args.seconds
                    )
                    got.update(variant=name, partitions=partitions, pair=pair)
                    results["runs"].append(got)
                    print(
                        f"{partitions:>4} partitions  {name:>10}: {got['records_per_s']:>9,.0f} "
                        f"records/s, Produce {got['produce_mean_ms']:6.2f} ms mean, "
                        f"{got['fsyncs_per_s']:7,.0f} fsyncs/s of {got['fsync_mean_ms']:.2f} ms",
                        flush=True,
                    )
    results["environment"]["load_average_after"] = os.getloadavg()
    print(
        f"\nload average before {results['environment']['load_average_before'][0]:.1f}, "
        f"after {results['environment']['load_average_after'][0]:.1f}; medians (min-max):"
    )
    for partitions in sorted({r["partitions"] for r in results["runs"]}):
        medians = {}
        for name, _ in variants:
            runs = [
                r for r in results["runs"] if r["variant"] == name and r["partitions"] == partitions
            ]
            rates = [r["records_per_s"] for r in runs]
            produce = [r["produce_mean_ms"] for r in runs]
            medians[name] = statistics.median(rates)
            print(
                f"{partitions:>4} partitions  {name:>10}: {statistics.median(rates):>9,.0f} "
                f"records/s ({min(rates):,.0f}-{max(rates):,.0f}), Produce mean "
                f"{statistics.median(produce):.2f} ms ({min(produce):.2f}-{max(produce):.2f})"
            )
        if len(variants) == 2:
            (a, _), (b, _) = variants
            print(f"{partitions:>4} partitions  {b} / {a}: {medians[b] / medians[a]:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flush.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
