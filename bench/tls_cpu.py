"""The broker's CPU per megabyte over TLS against plaintext: what encryption costs shoal.

Throughput on a shared machine moves with everyone else's load; the CPU time the broker
process spends on a fixed amount of work moves far less. So this runs one ``shoal broker``
with two listeners, PLAINTEXT and SASL_SSL (SCRAM-SHA-512, TLS 1.3, the certificate and user of
``compare.py``'s secured rows), and for each record size produces a fixed number of records
(acks=all, compare.py's producer settings) and consumes them again, over each listener in turn,
reading the broker's utime+stime from ``/proc/<pid>/stat`` before and after. Rounds interleave
the listeners (A/B, B/A, ...) and, with ``--loops asyncio,uvloop``, brokers on either event
loop, so a burst of load lands on all of them alike. Reports the median broker CPU µs per MB
(record values; framing and TLS overhead are the broker's cost of carrying them), its min and
max, and the TLS / plaintext ratio.

    python bench/tls_cpu.py                       # 100 B and 1 KiB, 5 rounds
    python bench/tls_cpu.py --loops asyncio,uvloop --sizes 1024 --rounds 3
    python bench/tls_cpu.py --loops uvloop,base@/tmp/base/src   # against another checkout
    python bench/tls_cpu.py --profile tls --sizes 1024 --rounds 1   # py-spy over TLS

The loop is chosen with the broker's ``event_loop`` setting.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench.peers and tests.peers import from root

from bench.peers.kafka_protocol import KafkaProtocolSystem  # noqa: E402
from bench.peers.secured import Certificates, create_user, shoal_settings  # noqa: E402
from bench.peers.systems import shoal_process  # noqa: E402
from tests.peers.kafka_peer import free_port  # noqa: E402

MB: Final = 1_000_000
PHASES: Final = ("produce", "consume")


def process_cpu_s(pid: int) -> float:
    """The CPU time process ``pid`` has used (every live thread, user and kernel), in seconds,
    to the nanosecond (/proc/<pid>/stat counts in ticks of 10 ms). A thread that ended took its
    time with it; the broker's threads (event loop, flusher, readers) live as long as it."""
    total_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total_ns += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
    return total_ns / 1e9


def child_pid(marker: str) -> int:
    """The pid of this process's child whose command line holds ``marker``."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in command:
                return int(pid)
    raise RuntimeError(f"no child process with {marker!r} in its command line")


@dataclass
class Broker:
    loop: str
    pid: int
    plain: KafkaProtocolSystem
    tls: KafkaProtocolSystem


@contextmanager
def broker(work: Path, loop: str, certs: Certificates) -> Iterator[Broker]:
    plain_port, tls_port = free_port(), free_port()
    settings = shoal_settings(certs, plaintext=("PLAIN", plain_port), sasl_ssl=("SECURE", tls_port))
    # LOOP@SRC: shoal's code from the directory SRC (another checkout's src/, to compare
    # against it), with its default loop; LOOP alone: this checkout's, on that event loop.
    loop_name, _, source = loop.partition("@")
    if source:
        settings["PYTHONPATH"] = source
    else:
        settings["SHOAL_EVENT_LOOP"] = loop_name
    with shoal_process(work, [], settings):
        plain = f"127.0.0.1:{plain_port}"
        create_user(plain)
        yield Broker(
            loop,
            child_pid(str(work / "shoal-data")),
            KafkaProtocolSystem("plaintext", plain, ""),
            KafkaProtocolSystem("tls", f"127.0.0.1:{tls_port}", "", certs.client_config()),
        )


@dataclass
class Samples:
    broker_cpu_us_per_mb: list[float] = field(default_factory=list)
    client_cpu_us_per_mb: list[float] = field(default_factory=list)
    records_per_s: list[float] = field(default_factory=list)


def measure(
    broker: Broker, system: KafkaProtocolSystem, size: int, records: int, topic: str
) -> dict[str, tuple[float, float, float]]:
    """Produce ``records`` records of ``size`` bytes to a new topic and consume them back:
    per phase, (broker CPU µs per MB of values, client CPU µs per MB, records/s)."""
    system.prepare(topic)
    megabytes = records * size / MB
    cpu0 = process_cpu_s(broker.pid)
    produced = system.produce_count(topic, size, records)
    cpu1 = process_cpu_s(broker.pid)
    consumed = system.consume(topic, size, records)
    cpu2 = process_cpu_s(broker.pid)
    return {
        phase: (broker_cpu * 1e6 / megabytes, run.client_cpu_s * 1e6 / megabytes,
                run.records / run.seconds)
        for phase, broker_cpu, run in (
            ("produce", cpu1 - cpu0, produced), ("consume", cpu2 - cpu1, consumed)
        )
    }  # fmt: skip


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):6,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", default="auto", help="event loops, e.g. asyncio,uvloop")
    parser.add_argument("--sizes", default="100,1024")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=float, default=100.0, help="MB of values per run")
    parser.add_argument(
        "--profile",
        choices=("", "plaintext", "tls"),
        default="",
        help="--profiler (py-spy installed beside this Python, or perf) records the broker "
        "during every run over this listener, into --profile-dir",
    )
    parser.add_argument("--profiler", choices=("py-spy", "perf"), default="py-spy")
    parser.add_argument("--profile-dir", default="/tmp", type=Path)
    args = parser.parse_args()
    loops = [x for x in args.loops.split(",") if x]
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"load before: {os.getloadavg()}", flush=True)
    results: dict[tuple[str, str, int, str], Samples] = {}
    with tempfile.TemporaryDirectory(prefix="shoal-tls-cpu-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        certs = Certificates(work / "certs")
        brokers = [
            stack.enter_context(broker(work / f"broker{i}", loop, certs))
            for i, loop in enumerate(loops)
        ]
        for round_number in range(args.rounds):
            for size in sizes:
                records = int(args.mb * MB / size)
                for b in brokers if round_number % 2 == 0 else reversed(brokers):
                    pair = [b.plain, b.tls]
                    for system in pair if round_number % 2 == 0 else reversed(pair):
                        topic = f"t-{system.name}-{size}-{round_number}"
                        phase_results = run_phase(
                            args.profile,
                            args.profiler,
                            args.profile_dir,
                            b,
                            system,
                            size,
                            records,
                            topic,
                        )
                        for phase, (cpu, client, rate) in phase_results.items():
                            samples = results.setdefault((b.loop, system.name, size, phase),
                                                         Samples())  # fmt: skip
                            samples.broker_cpu_us_per_mb.append(cpu)
                            samples.client_cpu_us_per_mb.append(client)
                            samples.records_per_s.append(rate)
                            print(f"round {round_number} {b.loop:8} {system.name:9} {size:5} B "
                                  f"{phase:7}: broker {cpu:6,.0f} client {client:6,.0f} "
                                  f"CPU µs/MB, {rate:10,.0f} records/s", flush=True)  # fmt: skip
    print(f"load after: {os.getloadavg()}")
    print("\nCPU µs per MB of values, median (min-max), and records/s (median), "
          "plaintext -> TLS")  # fmt: skip
    for loop in loops:
        for size in sizes:
            for phase in PHASES:
                plain = results[(loop, "plaintext", size, phase)]
                tls = results[(loop, "tls", size, phase)]
                ratio = statistics.median(tls.broker_cpu_us_per_mb) / statistics.median(
                    plain.broker_cpu_us_per_mb
                )
                print(
                    f"{loop:8} {size:5} B {phase:7} broker {summary(plain.broker_cpu_us_per_mb)}"
                    f" -> {summary(tls.broker_cpu_us_per_mb)} (x{ratio:4.2f})"
                    f"  client {statistics.median(plain.client_cpu_us_per_mb):6,.0f}"
                    f" -> {statistics.median(tls.client_cpu_us_per_mb):6,.0f}"
                    f"  records/s {statistics.median(plain.records_per_s):9,.0f}"
                    f" -> {statistics.median(tls.records_per_s):9,.0f}"
                )
    return 0


def run_phase(
    profile: str,
    profiler: str,
    work: Path,
    b: Broker,
    system: KafkaProtocolSystem,
    size: int,
    records: int,
    topic: str,
) -> dict[str, tuple[float, float, float]]:
    if profile != system.name:
        return measure(b, system, size, records, topic)
    out = work / f"shoal-profile-{b.loop.replace('/', '_')}-{topic}.{profiler}"
    if profiler == "perf":
        command = ["perf", "record", "-g", "-o", str(out), "-p", str(b.pid)]
    else:
        command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(b.pid),
                   "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attached before the phase
    try:
        return measure(b, system, size, records, topic)
    finally:
        spy.send_signal(2)
        spy.wait(60)
        print(f"profile: {out}")


if __name__ == "__main__":
    sys.exit(main())
