"""A producer limited by a client quota against shoal: how close its throughput comes to the
quota, and an unthrottled producer's throughput beside it on the same broker.

Issue 13's bar: a producer limited to 1 MB/s (``producer_byte_rate=1048576`` on its client id)
gets throughput within 10% of it and sees throttle time, while an unthrottled client is not
slowed by it. Kafka's default windows (11 of 1 s) let a new client burst about ten seconds'
worth at first, so the figure that counts is the steady one, measured after ``--warmup``. The
rate is enforced over an 11 s sliding window, so a short measurement (under a minute) swings by
up to that burst's share of it; the defaults measure 70 s.

    python bench/quotas.py                      # 90 s run, 1 KiB records
    python bench/quotas.py --seconds 40 --warmup 12 --quota 1048576

Prints one line per producer (records/s, MB/s, ratio to the quota, throttle callbacks) and
writes the figures as JSON to ``--out`` (default bench/results/quotas.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from confluent_kafka import Producer  # noqa: E402
from tests.server.wire import WireClient  # noqa: E402

from shoal.embedded import EmbeddedBroker  # noqa: E402
from shoal.protocol import ApiKey  # noqa: E402

RESULTS: Final = ROOT / "bench" / "results"
TOPIC: Final = "quota-bench"
QUEUED_MESSAGES_MAX: Final = 2000
"""A small local queue, so a throttled producer blocks rather than buffering gigabytes."""


@dataclass
class Run:
    client_id: str
    record_bytes: int
    delivered: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since start, bytes) of each delivered record."""
    throttle_events: int = 0
    throttle_ms_total: int = 0

    def rate(self, start_s: float, end_s: float) -> tuple[float, float]:
        """(records/s, bytes/s) of the records delivered between the two times."""
        window = [size for at, size in self.delivered if start_s <= at < end_s]
        span = max(end_s - start_s, 1e-9)
        return len(window) / span, sum(window) / span


def set_quota(bootstrap: str, client_id: str, rate: int) -> None:
    with WireClient(bootstrap, client_id="bench-admin") as admin:
        response = admin.request(
            ApiKey.ALTER_CLIENT_QUOTAS,
            1,
            {
                "entries": [
                    {
                        "entity": [{"entity_type": "client-id", "entity_name": client_id}],
                        "ops": [{"key": "producer_byte_rate", "value": rate, "remove": False}],
                    }
                ],
                "validate_only": False,
            },
        )
        if any(e.error_code for e in response.entries):
            raise SystemExit(f"AlterClientQuotas failed: {response.entries}")


def produce(bootstrap: str, run: Run, started: float, seconds: float) -> None:
    def throttled(event: object) -> None:
        run.throttle_events += 1
        run.throttle_ms_total += int(getattr(event, "throttle_time", 0) * 1000)

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": run.client_id,
            "linger.ms": 5,
            "acks": "all",
            "queue.buffering.max.messages": QUEUED_MESSAGES_MAX,
            "throttle_cb": throttled,
        }
    )
    value = b"q" * run.record_bytes

    def delivered(err: object, msg: object) -> None:
        if err is None:
            run.delivered.append((time.monotonic() - started, run.record_bytes))

    deadline = started + seconds
    while time.monotonic() < deadline:
        try:
            producer.produce(TOPIC, value, on_delivery=delivered)
        except BufferError:
            producer.poll(0.05)
            continue
        producer.poll(0)
    producer.purge()  # what is still queued would be sent after the run: not counted
    producer.flush(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--warmup", type=float, default=20.0, help="burst allowance, skipped")
    parser.add_argument("--quota", type=int, default=1_048_576, help="producer_byte_rate, B/s")
    parser.add_argument("--record-bytes", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as data,
        EmbeddedBroker(data, port=0, http_port=0, num_partitions=1) as broker,
    ):
        bootstrap = broker.bootstrap_servers
        set_quota(bootstrap, "limited", args.quota)
        runs = [Run("limited", args.record_bytes), Run("unthrottled", args.record_bytes)]
        started = time.monotonic()
        threads = [
            threading.Thread(target=produce, args=(bootstrap, run, started, args.seconds))
            for run in runs
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    report = {"quota_bytes_per_s": args.quota, "seconds": args.seconds, "warmup_s": args.warmup}
    print(
        f"producer_byte_rate quota: {args.quota} B/s ({args.quota / 1e6:.3f} MB/s); "
        f"{args.record_bytes}-byte records; steady window {args.warmup:.0f}-{args.seconds:.0f} s"
    )
    for run in runs:
        steady_rps, steady_bps = run.rate(args.warmup, args.seconds)
        _, whole_bps = run.rate(0.0, args.seconds)
        ratio = steady_bps / args.quota
        print(
            f"{run.client_id:>12}: {steady_rps:10.1f} records/sec, {steady_bps / 1e6:8.3f} MB/sec "
            f"steady ({ratio:6.3f}x the quota); whole run {whole_bps / 1e6:8.3f} MB/sec; "
            f"throttle callbacks {run.throttle_events} ({run.throttle_ms_total} ms in all)"
        )
        report[run.client_id] = {
            **{k: v for k, v in asdict(run).items() if k != "delivered"},
            "steady_records_per_s": steady_rps,
            "steady_bytes_per_s": steady_bps,
            "steady_ratio_to_quota": ratio,
            "whole_run_bytes_per_s": whole_bps,
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quotas.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
