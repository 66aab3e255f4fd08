"""Schema registry benchmark: confluent-kafka's SchemaRegistryClient against ``shoal broker``.

A fresh ``shoal broker`` subprocess (temporary data directory, default settings: ``sync``
durability, so every registration waits for the ``_schemas`` record's fsync) serves the
registry on its HTTP listener. Prints a table and writes ``bench/results/registry.json``
(``registry.quick.json`` with ``--quick``). Nothing here asserts a time.

    python bench/registry.py            # full run, under a minute
    python bench/registry.py --quick    # smoke run, a few seconds

What is measured:

a. register latency: ``SchemaRegistryClient.register_schema`` of distinct Avro schemas, one
   subject each (each call reaches the registry: a parse, a compatibility check against
   nothing, one record written to ``_schemas`` and acknowledged), p50/p99/max
b. lookups by id, cached: one client's ``get_schema(id)`` over the registered ids; after the
   first round this is the client's own cache, i.e. what a deserializer pays per record
c. lookups by id, uncached over one connection: raw ``httpx`` ``GET /schemas/ids/{id}`` with
   keep-alive (the registry's own cost plus HTTP)
d. lookups by id, a fresh ``SchemaRegistryClient`` per lookup (new connection each time: what
   a short-lived process pays)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import httpx

with warnings.catch_warnings():  # authlib's deprecation notice on import
    warnings.simplefilter("ignore")
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """``shoal broker`` as a child process on a fresh data directory."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.http_port = free_port()
        self.log_path = work / "broker.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "shoal.cli", "broker",
            "--data-dir", str(self.work / "data"),
            "--kafka-listen", f"127.0.0.1:{free_port()}",
            "--http-listen", f"127.0.0.1:{self.http_port}",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the broker did not start:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("the broker did not stop on SIGTERM") from None


def avro_schema(i: int) -> Schema:
    """A distinct record per ``i`` (-1: the warm-up's)."""
    record = {
        "type": "record",
        "name": f"Bench{i}" if i >= 0 else "Warmup",
        "namespace": "bench",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
        ],
    }
    return Schema(json.dumps(record), "AVRO")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_register(url: str, count: int) -> tuple[list[int], dict[str, float]]:
    client = SchemaRegistryClient({"url": url})
    ids: list[int] = []
    latencies_ms: list[float] = []
    try:
        # The first write also sets up the registry's producer path to ``_schemas``; it is
        # reported apart so that one start-up cost does not stand in for the p99.
        start = time.perf_counter()
        client.register_schema("bench-warmup-value", avro_schema(-1))
        first_ms = (time.perf_counter() - start) * 1000
        for i in range(count):
            schema = avro_schema(i)
            start = time.perf_counter()
            ids.append(client.register_schema(f"bench-{i}-value", schema))
            latencies_ms.append((time.perf_counter() - start) * 1000)
    finally:
        client.close()
    return ids, {
        "count": count,
        "first_ms": first_ms,
        "p50_ms": percentile(latencies_ms, 0.50),
        "p99_ms": percentile(latencies_ms, 0.99),
        "max_ms": max(latencies_ms),
        "mean_ms": statistics.fmean(latencies_ms),
        "per_s": count / (sum(latencies_ms) / 1000),
    }


def lookups_per_second(lookup: Callable[[int], Any], ids: list[int], seconds: float) -> float:
    """Lookups of ``ids`` in turn for ``seconds``; each result is checked to be a schema."""
    done = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for schema_id in ids:
            if not lookup(schema_id):
                raise RuntimeError(f"lookup of {schema_id} returned nothing")
            done += 1
            if done % 64 == 0 and time.perf_counter() >= deadline:
                break
    return done / (time.perf_counter() - start)


def measure_lookups(url: str, ids: list[int], seconds: float) -> dict[str, float]:
    results: dict[str, float] = {}
    cached = SchemaRegistryClient({"url": url})
    try:
        results["cached_client_per_s"] = lookups_per_second(
            lambda i: cached.get_schema(i).schema_str, ids, seconds
        )
    finally:
        cached.close()
    with httpx.Client(base_url=url) as http:

        def raw(i: int) -> str:
            response = http.get(f"/schemas/ids/{i}")
            response.raise_for_status()
            return str(response.json()["schema"])

        results["uncached_httpx_keepalive_per_s"] = lookups_per_second(raw, ids, seconds)

    def fresh(i: int) -> str:
        client = SchemaRegistryClient({"url": url})
        try:
            return str(client.get_schema(i).schema_str)
        finally:
            client.close()

    results["uncached_fresh_client_per_s"] = lookups_per_second(fresh, ids, seconds)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, small counts")
    parser.add_argument("--json", type=Path, help="results file (default under bench/results)")
    args = parser.parse_args(argv)
    registers = 50 if args.quick else 500
    seconds = 1.0 if args.quick else 5.0
    out = args.json or RESULTS_DIR / ("registry.quick.json" if args.quick else "registry.json")

    print(
        f"shoal registry bench: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; `shoal broker` subprocess, default settings"
    )
    with tempfile.TemporaryDirectory(prefix="shoal-bench-registry-") as tmp:
        broker = Broker(Path(tmp))
        broker.start()
        try:
            ids, register = measure_register(broker.url, registers)
            lookups = measure_lookups(broker.url, ids, seconds)
        finally:
            code = broker.stop()
    print(
        f"register ({register['count']} distinct Avro schemas, one subject each): "
        f"p50 {register['p50_ms']:.2f} ms, p99 {register['p99_ms']:.2f} ms, "
        f"max {register['max_ms']:.2f} ms ({register['per_s']:.0f}/s sequential); "
        f"first register (not counted) {register['first_ms']:.2f} ms"
    )
    print(f"lookups by id over {len(ids)} ids, {seconds:.0f} s each:")
    print(f"  cached (one SchemaRegistryClient)      {lookups['cached_client_per_s']:>12,.0f}/s")
    print(
        f"  uncached (httpx GET, keep-alive)       "
        f"{lookups['uncached_httpx_keepalive_per_s']:>12,.0f}/s"
    )
    print(
        f"  uncached (fresh client per lookup)     "
        f"{lookups['uncached_fresh_client_per_s']:>12,.0f}/s"
    )
    print(f"broker exit code after SIGTERM: {code}")
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "quick": args.quick,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.release()}",
        "register": register,
        "lookups": {**lookups, "ids": len(ids), "seconds_each": seconds},
        "broker_exit_code": code,
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
