"""Transactions: shoal against Apache Kafka 4.4, and against shoal without transactions.

Two workloads, one system running at a time, in the same run (8-partition topics, 100 B
records, confluent-kafka / librdkafka clients):

1. transactional produce: one producer, ``--transactions`` transactions of 1,000 records each
   spread over the 8 partitions (begin, 1,000 ``produce()``, ``commit_transaction()``, the next
   begins once the commit returned); records/s from the first begin to the last commit. Beside
   it the same records from an idempotent producer without transactions, the baseline.
2. exactly-once framework: ``App`` with ``@app.subscriber(..., exactly_once=True, output=...)``
   reading a pre-produced 8-partition topic and returning each record to an output topic: a
   transaction per fetch holding its outputs and its consumed offsets. Records/s from the first
   record handled until the group's committed offsets cover the whole input (a transaction
   counts once it committed). Beside it the same App with ``exactly_once=False``
   (at-least-once: outputs then a commit of offsets per fetch), the baseline.

Ratios: shoal / Apache Kafka for each workload (goal >= 1.0), and transactional / plain on each
system (what the transactions cost). On shoal, each transactional run also reads the broker's
own metrics before and after: requests per transaction and their mean time inside the broker
(Produce, AddPartitionsToTxn, EndTxn), and fsyncs per transaction with their mean duration, the
answer to "where does a transaction's time go". Writes transactions.md and transactions.json into
``--out`` (default bench/results/). ``--quick`` is a smoke run (a few transactions, a few
hundred records) that checks the bench works and says nothing about speed.

    python bench/transactions.py                       # full run, a few minutes
    python bench/transactions.py --quick --out /tmp/txn
    python bench/transactions.py --systems shoal --profile /tmp/shoal.prof   # cProfile the broker
    python bench/transactions.py --kafka-bootstrap 127.0.0.1:9092  # an Apache Kafka running
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench.peers and tests.peers import from root

from bench.peers.runs import Log, run_systems, write_json  # noqa: E402
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # noqa: E402

from shoal import App  # noqa: E402

RESULTS: Final = ROOT / "bench" / "results"
SYSTEMS: Final = ["shoal", "kafka"]
PARTITIONS: Final = 8
RECORDS_PER_TRANSACTION: Final = 1_000
RECORD_BYTES: Final = 100
CLIENT_TIMEOUT_S: Final = 60.0
"""Bound on one client call (a commit, a flush, a topic creation): a hang becomes an error."""
EOS_RUN_TIMEOUT_S: Final = 300.0
"""Bound on one framework run: a stuck App fails the run instead of hanging the bench."""
COMMITTED_POLL_S: Final = 0.02
"""How often the framework run asks the broker how far it got once every record was handled:
the run's end is known to within this and a round trip (runs last seconds)."""
KEYS: Final = 64
"""Distinct keys of the framework's input: its subscriber runs ``PARTITIONS`` lanes of keys."""
PRODUCER: Final[dict[str, Any]] = {
    "acks": "all",
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 1_000_000,
    "compression.type": "none",
    "enable.idempotence": True,  # what a transactional producer is too: the fair baseline
    "log_level": 0,
}
CLIENT: Final = (
    "confluent-kafka (librdkafka), acks=all, idempotent, linger.ms 5; the framework: shoal App "
    "on kafka://, one subscriber (concurrency 8: a lane per key, 64 keys), its default fetch of "
    "up to 500 records"
)


@dataclass
class Config:
    quick: bool
    transactions: int
    plain_records: int
    """Records of the non-transactional produce run: more than the transactional run's, so
    that a run at several hundred thousand records/s still lasts about a second."""
    eos_records: int
    repeats: int
    warmup_runs: int
    """Runs of every workload before the counted ones, their figures dropped: Apache Kafka's
    JVM compiles its hot paths in the first seconds (its first run here was half its later
    ones), and shoal gets the same courtesy."""
    records_per_transaction: int = RECORDS_PER_TRANSACTION
    size: int = RECORD_BYTES
    partitions: int = PARTITIONS


def config_for(quick: bool) -> Config:
    if quick:
        return Config(
            True, transactions=3, plain_records=3_000, eos_records=300, repeats=1, warmup_runs=0
        )
    return Config(
        False, transactions=100, plain_records=300_000, eos_records=10_000, repeats=3, warmup_runs=1
    )


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for future in futures.values():
        future.result(CLIENT_TIMEOUT_S)
    # Every partition's leader known before the clock starts: a fresh topic's first produce
    # otherwise waits on metadata (Apache Kafka elects the leaders a moment after creation).
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while True:
        topics = admin.list_topics(timeout=CLIENT_TIMEOUT_S).topics
        if all(
            n in topics
            and len(topics[n].partitions) == partitions
            and all(p.leader >= 0 and p.error is None for p in topics[n].partitions.values())
            for n in names
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics {names} have no leaders after {CLIENT_TIMEOUT_S} s")
        time.sleep(0.05)


def value_of(n: int, size: int) -> bytes:
    """A JSON object of ``size`` bytes (the framework decodes it): {"n": n, "pad": "..."}."""
    head = json.dumps({"n": n, "pad": ""}).encode()
    return head[:-2] + b"x" * max(0, size - len(head)) + b'"}'


def _produce(
    producer: Producer, topic: str, partition: int, value: bytes, key: bytes | None = None
) -> None:
    while True:
        try:
            producer.produce(topic, value, key, partition=partition)
            return
        except BufferError:
            producer.poll(0.001)  # the local queue is full: let librdkafka send


def produce_plain(bootstrap: str, topic: str, records: int, size: int) -> dict[str, Any]:
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER, "on_delivery": delivered})
    producer.list_topics(topic, timeout=CLIENT_TIMEOUT_S)
    values = [value_of(n, size) for n in range(records)]
    began, cpu0 = time.perf_counter(), time.process_time()
    for n, value in enumerate(values):
        _produce(producer, topic, n % PARTITIONS, value, str(n % KEYS).encode())
    left = producer.flush(CLIENT_TIMEOUT_S)
    seconds = time.perf_counter() - began
    if left or failures:
        raise RuntimeError(f"{left} records unsent, {len(failures)} failed: {failures[:3]}")
    return {
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "client_cpu_fraction": (time.process_time() - cpu0) / seconds,
    }


def produce_transactional(
    bootstrap: str, topic: str, transactions: int, per_transaction: int, size: int
) -> dict[str, Any]:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            **PRODUCER,
            "transactional.id": f"txn-bench-{topic}",
        }
    )
    producer.init_transactions(CLIENT_TIMEOUT_S)  # not timed: once per producer's life
    values = [value_of(n, size) for n in range(per_transaction)]
    commit_ms: list[float] = []
    began, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(transactions):
        producer.begin_transaction()
        for n, value in enumerate(values):
            _produce(producer, topic, n % PARTITIONS, value)
        committing = time.perf_counter()
        producer.commit_transaction(CLIENT_TIMEOUT_S)
        commit_ms.append((time.perf_counter() - committing) * 1000)
    seconds = time.perf_counter() - began
    records = transactions * per_transaction
    return {
        "transactions": transactions,
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "transactions_per_s": transactions / seconds,
        "commit_ms_median": statistics.median(commit_ms),
        "commit_ms_max": max(commit_ms),
        "client_cpu_fraction": (time.process_time() - cpu0) / seconds,
    }


class Progress:
    """How far a framework run got, asked of the broker: the input offsets ``group`` committed
    (exactly-once: they commit with the outputs, in one transaction), or the records written
    to the output topic (at-least-once: every output is acknowledged before its input's offset
    is queued for an asynchronous commit, so the outputs are the work done)."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0}
        )

    def committed(self, topic: str) -> int:
        wanted = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum(max(0, tp.offset) for tp in self.consumer.committed(wanted, CLIENT_TIMEOUT_S))

    def written(self, topic: str) -> int:
        return sum(
            self.consumer.get_watermark_offsets(TopicPartition(topic, p), CLIENT_TIMEOUT_S)[1]
            for p in range(PARTITIONS)
        )

    def close(self) -> None:
        self.consumer.close()


def framework_run(
    bootstrap: str, source: str, records: int, exactly_once: bool, concurrency: int
) -> dict[str, Any]:
    """An App reading ``records`` records of ``source`` and returning each to an output topic;
    timed from the first record handled until the whole input's work is done (see Progress)."""
    out, group = f"{source}-out", f"{source}-{'eos' if exactly_once else 'alo'}"
    create_topics(bootstrap, [out], PARTITIONS)
    handled = [0]
    first_ns: list[int] = []
    progress = Progress(bootstrap, group)

    def done() -> bool:
        return (progress.committed(source) if exactly_once else progress.written(out)) >= records

    async def scenario() -> dict[str, Any]:
        app = App(f"kafka://{bootstrap}")

        @app.subscriber(
            source,
            group=group,
            output=out,
            exactly_once=exactly_once,
            dlq=False,
            concurrency=concurrency,
        )
        async def forward(doc: dict[str, Any]) -> dict[str, Any]:
            if not first_ns:
                first_ns.append(time.monotonic_ns())
            handled[0] += 1
            return doc

        async with app:
            deadline = time.monotonic() + EOS_RUN_TIMEOUT_S
            while handled[0] < records or not await asyncio.to_thread(done):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{handled[0]}/{records} handled, not all done in time")
                await asyncio.sleep(COMMITTED_POLL_S)
            end_ns = time.monotonic_ns()
        seconds = (end_ns - first_ns[0]) / 1e9
        return {
            "records": records,
            "handled": handled[0],
            "seconds": seconds,
            "records_per_s": records / seconds,
        }

    try:
        return asyncio.run(scenario())
    finally:
        progress.close()


BREAKDOWN_APIS: Final = ("Produce", "AddPartitionsToTxn", "EndTxn", "InitProducerId")


def scrape(metrics_url: str) -> dict[str, float]:
    """The ``_sum`` and ``_count`` samples of shoal's request and fsync histograms, summed
    over versions: ``{"EndTxn_sum": ..., "EndTxn_count": ..., "fsync_sum": ...}``."""
    import re
    import urllib.request

    with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=CLIENT_TIMEOUT_S) as answer:
        text = answer.read().decode()
    got: dict[str, float] = {}
    request = re.compile(r'^shoal_request_duration_seconds_(sum|count)\{api="(\w+)".*\} (\S+)$')
    fsync = re.compile(r"^shoal_fsync_duration_seconds_(sum|count) (\S+)$")
    for line in text.splitlines():
        if m := request.match(line):
            key = f"{m[2]}_{m[1]}"
            got[key] = got.get(key, 0.0) + float(m[3])
        elif m := fsync.match(line):
            got[f"fsync_{m[1]}"] = float(m[2])
    return got


def breakdown(before: dict[str, float], after: dict[str, float], txns: int) -> dict[str, Any]:
    """Where a transactional run's time went inside shoal, from its metrics: per API the
    requests per transaction and their mean time in the broker (arrival to response ready),
    and the fsyncs per transaction with their mean duration."""

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    out: dict[str, Any] = {}
    for name in (*BREAKDOWN_APIS, "fsync"):
        count = delta(f"{name}_count")
        out[name] = {
            "per_transaction": count / txns,
            "mean_ms": delta(f"{name}_sum") / count * 1000 if count else 0.0,
        }
    return out


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


WORKLOADS: Final = {
    "produce_plain": "produce, idempotent, no transactions",
    "produce_transactional": "produce, transactions of 1,000 records",
    "framework_at_least_once": "App subscriber, exactly_once=False, concurrency 8",
    "framework_exactly_once": "App subscriber, exactly_once=True, concurrency 8",
}


def measure(
    bootstrap: str, cfg: Config, log: Callable[[str], None], metrics_url: str | None
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in WORKLOADS}
    for repeat in range(-cfg.warmup_runs, cfg.repeats):
        if repeat == 0:
            for got in runs.values():
                got.clear()  # the warm-up's figures: not counted
        tag = f"{repeat}-{time.monotonic_ns()}"
        plain, txn = f"txb-plain-{tag}", f"txb-txn-{tag}"
        create_topics(bootstrap, [plain, txn], cfg.partitions)
        runs["produce_plain"].append(produce_plain(bootstrap, plain, cfg.plain_records, cfg.size))
        before = scrape(metrics_url) if metrics_url else {}
        runs["produce_transactional"].append(
            produce_transactional(
                bootstrap, txn, cfg.transactions, cfg.records_per_transaction, cfg.size
            )
        )
        if metrics_url:
            inside = breakdown(before, scrape(metrics_url), cfg.transactions)
            runs["produce_transactional"][-1]["broker_breakdown"] = inside
            log(
                "    inside shoal, per transaction: "
                + ", ".join(
                    f"{name} {v['per_transaction']:.1f} x {v['mean_ms']:.2f} ms"
                    for name, v in inside.items()
                )
            )
        # The framework reads the plain run's first records: the same input for both modes.
        for mode, exactly_once in (("at_least_once", False), ("exactly_once", True)):
            source = f"txb-app-{mode}-{tag}"
            create_topics(bootstrap, [source], cfg.partitions)
            produce_plain(bootstrap, source, cfg.eos_records, cfg.size)
            runs[f"framework_{mode}"].append(
                framework_run(bootstrap, source, cfg.eos_records, exactly_once, cfg.partitions)
            )
        t = runs["produce_transactional"][-1]
        log(
            f"  {'warm-up' if repeat < 0 else f'run {repeat + 1}'}: produce "
            f"{runs['produce_plain'][-1]['records_per_s']:,.0f}/s, "
            f"transactional {t['records_per_s']:,.0f}/s ({t['transactions_per_s']:.1f} txn/s, "
            f"commit median {t['commit_ms_median']:.1f} ms); framework at-least-once "
            f"{runs['framework_at_least_once'][-1]['records_per_s']:,.0f}/s, exactly-once "
            f"{runs['framework_exactly_once'][-1]['records_per_s']:,.0f}/s"
        )
    return {
        name: {"runs": got, "records_per_s": spread([r["records_per_s"] for r in got])}
        for name, got in runs.items()
    }


@contextmanager
def started(
    name: str, work: Path, running: dict[str, str], profile: Path | None
) -> Iterator[tuple[str, str, str | None]]:
    """(bootstrap, durability, shoal's HTTP base URL) of ``name`` running in ``work`` (or
    already at ``running``)."""
    from bench.peers.systems import DURABILITY, kafka_broker, shoal_process
    from tests.peers.kafka_peer import free_port

    work.mkdir(parents=True, exist_ok=True)
    if name in running:
        yield running[name], f"{DURABILITY[name]} (a server already running)", None
    elif name == "shoal":
        bootstrap = f"127.0.0.1:{free_port()}"
        python = ["-m", "cProfile", "-o", str(profile)] if profile else []
        with shoal_process(work, ["--kafka-listen", bootstrap], python_args=python) as http:
            yield bootstrap, DURABILITY[name], http
    elif name == "kafka":
        with kafka_broker(work / "kafka") as bootstrap:
            yield bootstrap, DURABILITY[name], None
    else:
        raise ValueError(f"unknown system {name!r}; known: {SYSTEMS}")


def _figure(results: dict[str, Any], name: str, workload: str) -> float:
    cell = results["systems"].get(name, {}).get("results", {}).get(workload)
    return float("nan") if cell is None else float(cell["records_per_s"]["median"])


def _ratio(a: float, b: float) -> str:
    return "n/a" if a != a or b != b or not b else f"{a / b:.2f}"


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:,.0f}"


def write_markdown(results: dict[str, Any], path: Path) -> str:
    cfg, env = results["config"], results["environment"]
    names = [n for n in SYSTEMS if n in results["systems"]]
    lines = [
        "# Transactions: shoal against Apache Kafka 4.4",
        "",
        f"{cfg['partitions']} partitions, {cfg['size']} B records; transactions of "
        f"{cfg['records_per_transaction']:,} records, {cfg['transactions']} per run (without: "
        f"{cfg['plain_records']:,} records per run); the "
        f"framework reads {cfg['eos_records']:,} records per run; median of {cfg['repeats']} "
        f"run(s) after {cfg['warmup_runs']} warm-up run(s) not counted. {env['cores']} cores "
        f"shared with other work (load average before "
        f"{env['load_average_before'][0]:.1f}, after {env['load_average_after'][0]:.1f}): "
        "every figure is what this machine gave then.",
        "",
        "| workload | shoal / kafka |",
        "|---|---:|",
    ]
    for workload, label in WORKLOADS.items():
        ratio = _ratio(_figure(results, "shoal", workload), _figure(results, "kafka", workload))
        lines.append(f"| {label} | {ratio} |")
    lines += ["", "| transactions cost: transactional / plain | " + " | ".join(names) + " |"]
    lines.append("|---|" + "---:|" * len(names))
    for label, txn, plain in (
        ("produce", "produce_transactional", "produce_plain"),
        ("framework", "framework_exactly_once", "framework_at_least_once"),
    ):
        cells = [_ratio(_figure(results, n, txn), _figure(results, n, plain)) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| records/s | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for workload, label in WORKLOADS.items():
        cells = [_fmt(_figure(results, n, workload)) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for name in names:
        entry = results["systems"][name]
        lines.append(f"- **{name}**: {entry['durability']}; client: {entry['client']}")
    for name, why in results["failed"].items():
        lines.append(f"- **{name} FAILED**: {why}")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def run(
    cfg: Config,
    systems: list[str],
    out_dir: Path,
    work_base: Path,
    running: dict[str, str],
    profile: Path | None,
) -> dict[str, Any]:
    def measure_system(name: str, work: Path, log: Log) -> dict[str, Any]:
        with started(name, work, running, profile) as system:
            bootstrap, durability, metrics_url = system
            figures = measure(bootstrap, cfg, log, metrics_url)
        return {"durability": durability, "client": CLIENT, "results": figures}

    failures = (KafkaException, RuntimeError, OSError)
    results = run_systems(
        asdict(cfg), systems, work_base, "shoal-txn-bench-", measure_system, failures
    )
    write_json(results, out_dir / "transactions.json")
    print(write_markdown(results, out_dir / "transactions.md"))
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run: tiny counts")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    parser.add_argument("--transactions", type=int, help="transactions per run (100; quick 3)")
    parser.add_argument("--plain-records", type=int, help="plain produce records (300,000)")
    parser.add_argument("--eos-records", type=int, help="framework records per run (10,000)")
    parser.add_argument("--repeats", type=int, help="runs per system (3; quick 1)")
    parser.add_argument("--warmup-runs", type=int, help="uncounted runs first (1; quick 0)")
    parser.add_argument("--kafka-bootstrap", help="use this running Apache Kafka 4.4")
    parser.add_argument(
        "--profile", type=Path, help="run the shoal broker under cProfile, stats written here"
    )
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
    cfg.transactions = args.transactions or cfg.transactions
    cfg.eos_records = args.eos_records or cfg.eos_records
    cfg.plain_records = args.plain_records or cfg.plain_records
    cfg.repeats = args.repeats or cfg.repeats
    if args.warmup_runs is not None:
        cfg.warmup_runs = args.warmup_runs
    running = {"kafka": args.kafka_bootstrap} if args.kafka_bootstrap else {}
    results = run(cfg, systems, args.out, args.dir, running, args.profile)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
