"""Share groups (KIP-932 queues): shoal against Apache Kafka 4.4 and RabbitMQ quorum queues.

For 1, 4 and 16 consumers reading one queue together (a one-partition topic read by a share
group; a quorum queue), in the same run, one system running at a time:

1. consume-and-acknowledge throughput: ``--records`` records are published first (acks=all;
   publisher confirms), then the consumers, each a child process with its own client, start at
   once and acknowledge every record on its own; records/s from the first record received to
   the last acknowledgement counted (the join before the first record is reported beside it).
2. redelivery latency: one record in a hundred is given back once on its first delivery (Kafka
   RELEASE; AMQP ``basic.nack`` with requeue) and the time until a consumer (any) gets it again
   is measured, p50/p99 over every such record of the runs (see bench/peers/share_common.py).

Writes share.md (ratio tables shoal / each peer, then the figures), share.json and share.png
into ``--out`` (default bench/results/). ``--quick`` is a smoke run (200 records, 1
and 2 consumers) that checks the bench works and says nothing about speed.

    python bench/share.py                    # full run: never on a shared machine during tests
    python bench/share.py --quick --out /tmp/share
    python bench/share.py --systems shoal,kafka --consumers 1,4
    python bench/share.py --kafka-bootstrap 127.0.0.1:9092   # an Apache Kafka already running
    python bench/share.py --systems shoal,kafka --interleave # runs in turn: a loaded machine
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench.peers and tests.peers import from root

from bench.peers import share_kafka, share_rabbitmq  # noqa: E402
from bench.peers.common import percentiles  # noqa: E402
from bench.peers.report import environment  # noqa: E402
from bench.peers.runs import Log, run_systems, write_json  # noqa: E402
from bench.peers.share_common import (  # noqa: E402
    READY_TIMEOUT_S,
    RUN_TIMEOUT_S,
    Shared,
)

RESULTS: Final = ROOT / "bench" / "results"
SYSTEMS: Final = ["shoal", "kafka", "rabbitmq"]
PEERS: Final = ["kafka", "rabbitmq"]
CHILD_STOP_TIMEOUT_S: Final = 60.0
CLIENT: Final = {
    "shoal": (
        f"confluent-kafka ShareConsumer, explicit acks, max.poll.records "
        f"{share_kafka.FETCH_RECORDS}, a process per consumer; 1 partition"
    ),
    "rabbitmq": (
        f"aio-pika, prefetch {share_kafka.FETCH_RECORDS}, basic.ack per delivery, "
        "a process per consumer"
    ),
}
CLIENT["kafka"] = CLIENT["shoal"]


@dataclass
class Config:
    quick: bool
    records: int
    consumers: list[int]
    repeats: int
    size: int = 100


def config_for(quick: bool) -> Config:
    if quick:
        return Config(True, 200, [1, 2], 1)
    return Config(False, 50_000, [1, 4, 16], 3)


@dataclass
class Target:
    """A running system: where its clients connect and which child reads it."""

    name: str
    url: str
    durability: str
    prepare: Callable[[str, int, int], None]
    """(queue or topic name, records, record size): created, with the records in it."""
    child: Callable[..., None]
    child_args: Callable[[str], tuple[Any, ...]]
    """The child's arguments before ``shared`` for one queue or topic."""


def kafka_target(name: str, bootstrap: str, durability: str) -> Target:
    def prepare(topic: str, records: int, size: int) -> None:
        share_kafka.prepare(bootstrap, topic, 1, f"{topic}-group")
        share_kafka.produce(bootstrap, topic, records, size)

    return Target(
        name,
        bootstrap,
        durability,
        prepare,
        share_kafka.consumer_child,
        lambda topic: (bootstrap, f"{topic}-group", topic),
    )


def rabbitmq_target(url: str, durability: str) -> Target:
    def prepare(queue: str, records: int, size: int) -> None:
        share_rabbitmq.prepare_and_publish(url, queue, records, size)

    return Target(
        "rabbitmq", url, durability, prepare, share_rabbitmq.consumer_child, lambda q: (url, q)
    )


@contextmanager
def started(name: str, work: Path, running: dict[str, str]) -> Iterator[Target]:
    """``name`` started in ``work`` (or the one already running at ``running[name]``)."""
    # Imported here, not at the top: every consumer child (spawned) imports this module, and
    # needs none of the servers' start-up code.
    from bench.peers.systems import DURABILITY, kafka_broker, shoal_broker
    from tests.peers.servers import start_rabbitmq

    work.mkdir(parents=True, exist_ok=True)
    if name in running:
        already = f"{DURABILITY[name]} (a server already running, given on the command line)"
        if name == "rabbitmq":
            yield rabbitmq_target(running[name], already)
        else:
            yield kafka_target(name, running[name], already)
    elif name == "shoal":
        with shoal_broker(work) as bootstrap:
            yield kafka_target(name, bootstrap, DURABILITY[name])
    elif name == "kafka":
        with kafka_broker(work / "kafka") as bootstrap:
            yield kafka_target(name, bootstrap, DURABILITY[name])
    elif name == "rabbitmq":
        with start_rabbitmq(work / "rabbitmq") as server:
            yield rabbitmq_target(server.url, DURABILITY[name])
    else:
        raise ValueError(f"unknown system {name!r}; known: {SYSTEMS}")


def _wait(condition: Callable[[], bool], timeout_s: float, what: str, procs: list[Any]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if any(p.exitcode not in (None, 0) for p in procs):
            raise RuntimeError(f"a consumer child died while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.005)


def consume_run(target: Target, dest: str, consumers: int, records: int) -> dict[str, Any]:
    """``consumers`` children read ``dest`` (holding ``records`` records) until every record
    is acknowledged; the run's figures."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a parent with librdkafka threads
    shared = Shared(ctx.Value("q", 0), ctx.Value("q", 0), ctx.Event(), records, ctx.Queue())
    procs = [
        ctx.Process(target=target.child, args=(*target.child_args(dest), shared), daemon=True)
        for _ in range(consumers)
    ]
    for proc in procs:
        proc.start()
    try:
        _wait(lambda: shared.ready.value == consumers, READY_TIMEOUT_S, "the consumers", procs)
        start_ns = time.monotonic_ns()
        shared.start.set()
        _wait(shared.done, RUN_TIMEOUT_S, f"{records} acknowledgements", procs)
        end_ns = time.monotonic_ns()
        children = [shared.results.get(timeout=CHILD_STOP_TIMEOUT_S) for _ in procs]
    finally:
        shared.start.set()  # a child still waiting to start sees the run is over and leaves
        for proc in procs:
            proc.join(CHILD_STOP_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
    errors = [c["error"] for c in children if c["error"]]
    if errors:
        raise RuntimeError(f"{len(errors)} consumer(s) failed; the first:\n{errors[0]}")
    first_ns = min(c["first_record_ns"] for c in children if c["first_record_ns"] is not None)
    released = {int(k): v for c in children for k, v in c["released_ns"].items()}
    again = {int(k): v for c in children for k, v in c["redelivered_ns"].items()}
    redelivery_ms = [(again[i] - released[i]) / 1e6 for i in released if i in again]
    return {
        "consumers": consumers,
        "records": records,
        "accepted": sum(c["accepted"] for c in children),
        "accepted_by_consumer": [c["accepted"] for c in children],
        "records_per_s": records / ((end_ns - first_ns) / 1e9),
        "join_ms": (first_ns - start_ns) / 1e6,
        "released": len(released),
        "redelivered": len(redelivery_ms),
        "redelivery_ms_each": redelivery_ms,
        "max_delivery_count": max(c["max_delivery_count"] for c in children),
        "client_cpu_fraction_max": max(c["cpu_s"] for c in children) / ((end_ns - start_ns) / 1e9),
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def one_run(target: Target, cfg: Config, consumers: int, repeat: int) -> dict[str, Any]:
    """Publish ``cfg.records`` records to a fresh queue of ``target`` and consume them once."""
    dest = f"share-{consumers}c-{repeat}-{time.monotonic_ns()}"
    began = time.monotonic()
    target.prepare(dest, cfg.records, cfg.size)
    prepared = time.monotonic()
    load = os.getloadavg()[0]
    run = consume_run(target, dest, consumers, cfg.records)
    run["prepare_s"], run["run_s"] = prepared - began, time.monotonic() - prepared
    run["load_average_1m"] = load
    return run


def run_line(name: str, run: dict[str, Any]) -> str:
    lat = percentiles(run["redelivery_ms_each"])
    return (
        f"  {name}{run['consumers']} consumers: {run['records_per_s']:,.0f} records/s "
        f"(join {run['join_ms']:.0f} ms), redelivery p50 {lat['p50']:.2f} "
        f"p99 {lat['p99']:.2f} ms ({run['redelivered']}/{run['released']} came back; "
        f"busiest client cpu {run['client_cpu_fraction_max']:.0%}; "
        f"publishing took {run['prepare_s']:.1f} s, the run {run['run_s']:.1f} s; "
        f"load {run['load_average_1m']:.1f})"
    )


def cell(runs: list[dict[str, Any]]) -> dict[str, Any]:
    pooled = [ms for run in runs for ms in run["redelivery_ms_each"]]
    return {
        "runs": runs,
        "records_per_s": spread([r["records_per_s"] for r in runs]),
        "redelivery_ms": percentiles(pooled),
    }


def measure(target: Target, cfg: Config, log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for consumers in cfg.consumers:
        runs = []
        for repeat in range(cfg.repeats):
            runs.append(one_run(target, cfg, consumers, repeat))
            log(run_line("", runs[-1]))
        out[f"consumers_{consumers}"] = cell(runs)
    return out


def measure_interleaved(
    cfg: Config, systems: list[str], work_base: Path, running: dict[str, str]
) -> dict[str, Any]:
    """Every system started at once, and their runs taken in turn (the order reversed every
    repeat): on a machine whose load changes from one minute to the next (shared with other
    work), a system measured minutes after another saw another machine, so each system's runs
    of a cell sit between the others' here."""
    results: dict[str, Any] = {
        "config": asdict(cfg) | {"interleaved": True},
        "environment": environment(),
        "systems": {},
        "failed": {},
    }
    with (
        tempfile.TemporaryDirectory(prefix="shoal-share-bench-", dir=work_base) as work,
        ExitStack() as stack,
    ):
        targets = {
            name: stack.enter_context(started(name, Path(work) / name, running)) for name in systems
        }
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {name: {} for name in systems}
        for consumers in cfg.consumers:
            for repeat in range(cfg.repeats):
                for name in systems if repeat % 2 == 0 else systems[::-1]:
                    if name in results["failed"]:
                        continue
                    try:
                        run = one_run(targets[name], cfg, consumers, repeat)
                    except Exception as exc:  # the others' figures are kept, as run_systems does
                        print(f"  {name} FAILED: {exc!r}", flush=True)
                        results["failed"][name] = repr(exc)
                        continue
                    runs[name].setdefault(consumers, []).append(run)
                    print(run_line(f"{name}: ", run), flush=True)
        for name, target in targets.items():
            if name not in results["failed"]:
                results["systems"][name] = {
                    "durability": target.durability,
                    "client": CLIENT[name],
                    "results": {f"consumers_{c}": cell(r) for c, r in runs[name].items()},
                }
    results["environment"]["load_average_after"] = os.getloadavg()
    return results


def _figure(results: dict[str, Any], name: str, key: str, path: tuple[str, ...]) -> float:
    value: Any = results["systems"].get(name, {}).get("results", {}).get(key)
    for part in path:
        if value is None:
            return float("nan")
        value = value.get(part)
    return float("nan") if value is None else float(value)


def _fmt(value: float) -> str:
    if value != value:  # NaN: not measured
        return "n/a"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def write_markdown(results: dict[str, Any], path: Path) -> str:
    cfg = results["config"]
    names = [n for n in SYSTEMS if n in results["systems"]]
    rows: list[tuple[str, str, tuple[str, ...]]] = []
    for consumers in cfg["consumers"]:
        key = f"consumers_{consumers}"
        rows.append(
            (f"consume+ack records/s, {consumers} consumers", key, ("records_per_s", "median"))
        )
        for q in ("p50", "p99"):
            rows.append((f"redelivery {q} ms, {consumers} consumers", key, ("redelivery_ms", q)))
    peers = [p for p in PEERS if p in names]
    lines = [
        "# Share groups: shoal against Apache Kafka 4.4 and RabbitMQ quorum queues",
        "",
        f"{cfg['records']:,} records of {cfg['size']} B per run, {cfg['repeats']} run(s) per "
        "cell (records/s: median; redelivery: every given-back record of the runs); "
        f"{results['environment']['cores']} cores. Ratios are shoal / peer: above 1 is shoal "
        "faster for records/s, below 1 is shoal faster for latency.",
        "",
        "| workload | " + " | ".join(f"shoal / {p}" for p in peers) + " |",
        "|---|" + "---|" * len(peers),
    ]
    for label, key, figure in rows:
        shoal = _figure(results, "shoal", key, figure)
        cells = []
        for peer in peers:
            other = _figure(results, peer, key, figure)
            cells.append(
                "n/a" if not other or other != other or shoal != shoal else f"{shoal / other:.2f}"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| workload | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key, figure in rows:
        lines.append(
            f"| {label} | "
            + " | ".join(_fmt(_figure(results, n, key, figure)) for n in names)
            + " |"
        )
    lines += [""]
    for name in names:
        entry = results["systems"][name]
        lines.append(f"- **{name}**: {entry['durability']}; client: {entry['client']}")
    for name, why in results["failed"].items():
        lines.append(f"- **{name} FAILED**: {why}")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def write_chart(results: dict[str, Any], path: Path) -> None:
    """Throughput (top) and redelivery p50/p99 (bottom) by consumer count, a bar per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = results["config"]["consumers"]
    names = [n for n in SYSTEMS if n in results["systems"]]
    width = 0.8 / max(1, len(names))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8))
    for i, name in enumerate(names):
        offset = (i - (len(names) - 1) / 2) * width
        cells = [results["systems"][name]["results"][f"consumers_{c}"] for c in counts]
        xs = [k + offset for k in range(len(counts))]
        color = f"C{i}"  # one colour per system in both panels
        top.bar(xs, [c["records_per_s"]["median"] for c in cells], width, label=name, color=color)
        p50 = [c["redelivery_ms"]["p50"] for c in cells]
        p99 = [c["redelivery_ms"]["p99"] for c in cells]
        bottom.bar(xs, p99, width, label=f"{name} p99", color=color, alpha=0.35)
        bottom.bar(xs, p50, width * 0.5, label=f"{name} p50 (narrow)", color=color)
    for axis in (top, bottom):
        axis.set_xticks(range(len(counts)), [f"{c} consumers" for c in counts])
        axis.set_yscale("log")
        axis.legend(fontsize=8)
    top.set_title("consume + acknowledge, records/s (higher is better)")
    bottom.set_title("redelivery after a release, ms (lower is better)")
    bottom.set_ylabel("ms")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(
    cfg: Config,
    systems: list[str],
    out_dir: Path,
    work_base: Path,
    running: dict[str, str],
    interleave: bool = False,
) -> dict[str, Any]:
    def measure_system(name: str, work: Path, log: Log) -> dict[str, Any]:
        with started(name, work, running) as target:
            figures = measure(target, cfg, log)
            return {"durability": target.durability, "client": CLIENT[name], "results": figures}

    if interleave:
        results = measure_interleaved(cfg, systems, work_base, running)
    else:
        results = run_systems(asdict(cfg), systems, work_base, "shoal-share-bench-", measure_system)
    write_json(results, out_dir / "share.json")
    print(write_markdown(results, out_dir / "share.md"))
    if results["systems"]:
        write_chart(results, out_dir / "share.png")
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run: tiny counts")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    parser.add_argument("--consumers", help="consumer counts, comma-separated (1,4,16)")
    parser.add_argument("--records", type=int, help="records per run (50,000; quick 200)")
    parser.add_argument("--repeats", type=int, help="runs per consumer count (3; quick 1)")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="start every system at once and take their runs in turn (for a loaded machine)",
    )
    parser.add_argument("--kafka-bootstrap", help="use this running Apache Kafka 4.4")
    parser.add_argument("--rabbitmq-url", help="use this running RabbitMQ (amqp://...)")
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()), help="where data goes"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        print(f"unknown systems {sorted(unknown)}; known: {SYSTEMS}", file=sys.stderr)
        return 2
    cfg = config_for(args.quick)
    if args.consumers:
        cfg.consumers = [int(v) for v in args.consumers.split(",")]
    cfg.records = args.records or cfg.records
    cfg.repeats = args.repeats or cfg.repeats
    running = {}
    if args.kafka_bootstrap:
        running["kafka"] = args.kafka_bootstrap
    if args.rabbitmq_url:
        running["rabbitmq"] = args.rabbitmq_url
    results = run(cfg, systems, args.out, args.dir, running, args.interleave)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
