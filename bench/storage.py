"""Storage benchmark: shoal's partition log against plain write+fsync on the same disk.

Prints a table of medians (with min and max over repeated runs) and writes
``bench/results/storage.json``. Every figure is measured in this run, on one temporary directory
(one filesystem), and shoal's figures are given as ratios to the plain-Python baseline of the
same size, as docs/TESTING.md asks. Nothing here asserts a time: PASS/MISS beside a target is
information for a person. The targets: SYNC 1 MiB >= 0.7x raw; 64 x 16 KiB SYNC >= 5x one
fsync per append; recovery of a 2 GiB partition after SIGKILL < 2 s.

    python bench/storage.py            # full run, a few minutes
    python bench/storage.py --quick    # CI smoke run: a few seconds, small sizes

What is measured:

a. raw: ``os.write`` + ``os.fsync`` per write into one growing file, 16 KiB and 1 MiB
b. shoal SYNC, one appender: ``append`` then ``wait_durable(...).result()`` per batch
c. shoal SYNC, 64 appender threads of 16 KiB each waiting for its own future (group commit),
   against "one fsync per append" = the raw 16 KiB writes/s; and (c') the same 64 appends in
   flight from one thread, as the broker's event loop holds them, to separate the cost of
   Python threads from that of the log
d. shoal NONE: ``append`` only (the OS writes back later), against plain ``os.write`` without
   fsync of the same sizes
e. read: ``read()`` of the whole log in order with 1 MiB ``max_bytes``, from the page cache
   and, after evicting the files' pages, from the disk
f. recovery: a child process writes ~2 GiB of 1 MiB batches (default 1 GiB segments) and is
   SIGKILLed; a fresh process times ``LogManager.open()`` of that directory (for SYNC also with
   the files evicted from the page cache); then, after a clean close, another fresh process
   times the clean reopen

The script runs itself as a child for (f): ``storage.py fill ...`` and ``storage.py open ...``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from shoal.buffers import Buffer
from shoal.records import SimpleRecord, build_batch
from shoal.storage import (
    File,
    FlushPolicy,
    LogConfig,
    LogManager,
    OsFileSystem,
    PartitionLog,
)

KIB: Final = 1024
MIB: Final = 1024 * KIB
SMALL_BYTES: Final = 16 * KIB
LARGE_BYTES: Final = 1 * MIB
READ_MAX_BYTES: Final = 1 * MIB
TOPIC: Final = "bench"
RESULTS: Final = Path(__file__).resolve().parent / "results" / "storage.json"
QUICK_RESULTS: Final = RESULTS.with_name("storage.quick.json")
"""A smoke run writes beside the full results rather than over them."""
TOP_UP_MIB: Final = 2
"""What a SYNC recovery run after the first appends before the next kill (see measure_recovery)."""
CHILD_TIMEOUT_S: Final = 600.0
"""A child that neither finishes nor gets killed within this is stuck: give up on it."""

SECTIONS: Final = ("appends", "reads", "recovery")

TARGET_SYNC_LARGE_RATIO: Final = 0.7
TARGET_GROUP_COMMIT_RATIO: Final = 5.0
TARGET_RECOVERY_MS: Final = 2000.0


# -- figures -----------------------------------------------------------------------------


@dataclass
class Run:
    """One timed run: how many bytes and operations in how long, and per-op latencies."""

    bytes: int
    ops: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    fsyncs: int | None = None
    cpu_s: float = 0.0
    """CPU time of the whole process (every thread) during the run: unlike throughput, barely
    moved by other processes competing for the cores."""

    @property
    def mib_per_s(self) -> float:
        return self.bytes / MIB / self.seconds

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds

    @property
    def cpu_us_per_op(self) -> float:
        return self.cpu_s / max(1, self.ops) * 1e6


@dataclass
class Row:
    """One line of the table: a figure over repeated runs, and how it compares."""

    name: str
    unit: str
    samples: list[float]
    ratio: float | None = None
    ratio_to: str = ""
    target: str = ""
    passed: bool | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


# -- (a) the baseline ----------------------------------------------------------------------


def raw_fsync_run(path: Path, write_bytes: int, seconds: float) -> Run:
    """The physical limit as Python sees it: one write and one fsync per buffer."""
    buf = os.urandom(write_bytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    latencies: list[float] = []
    try:
        cpu, start = time.process_time(), time.perf_counter()
        now = start
        while now - start < seconds:
            os.write(fd, buf)
            os.fsync(fd)
            done = time.perf_counter()
            latencies.append(done - now)
            now = done
        elapsed, cpu_s = now - start, time.process_time() - cpu
    finally:
        os.close(fd)
    return Run(len(latencies) * write_bytes, len(latencies), elapsed, latencies, cpu_s=cpu_s)


def raw_write_run(path: Path, write_bytes: int, seconds: float, max_bytes: int) -> Run:
    """The baseline of NONE: the same writes without fsync, into the page cache."""
    buf = os.urandom(write_bytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    ops, limit = 0, max(1, max_bytes // write_bytes)
    try:
        cpu, start = time.process_time(), time.perf_counter()
        now = start
        while ops < limit and now - start < seconds:
            os.write(fd, buf)
            ops += 1
            now = time.perf_counter()
        elapsed, cpu_s = now - start, time.process_time() - cpu
    finally:
        os.close(fd)
    return Run(ops * write_bytes, ops, elapsed, cpu_s=cpu_s)


# -- (b), (c), (d): appends ----------------------------------------------------------------


def make_batch(total_bytes: int) -> bytes:
    """A real record batch (one record, built by shoal's builder) of exactly ``total_bytes``.

    Stamped with the current time, as a producer would: a reopened log takes its active
    segment's age from the first batch, and an old timestamp would roll it at the first append.
    """
    now_ms = time.time_ns() // 1_000_000
    value_bytes = total_bytes - len(build_batch([SimpleRecord(value=b"")], base_timestamp=now_ms))
    # The record's length varints grow with the value; shrink the value by what they added.
    for _ in range(4):
        batch = build_batch([SimpleRecord(value=os.urandom(value_bytes))], base_timestamp=now_ms)
        if len(batch) == total_bytes:
            return batch
        value_bytes -= len(batch) - total_bytes
    raise RuntimeError(f"cannot build a batch of exactly {total_bytes} bytes")


class _CountingFile:
    """A segment file that counts its fsyncs: group commit shows as appends per fsync."""

    def __init__(self, file: File, counter: list[int]) -> None:
        self._file = file
        self._counter = counter

    @property
    def path(self) -> str:
        return self._file.path

    def size(self) -> int:
        return self._file.size()

    def append(self, parts: Sequence[Buffer]) -> None:
        self._file.append(parts)

    def pread(self, size: int, position: int) -> bytes:
        return self._file.pread(size, position)

    def fsync(self) -> None:
        self._counter[0] += 1  # only the flusher thread fsyncs segments: no lock needed
        self._file.fsync()

    def truncate(self, size: int) -> None:
        self._file.truncate(size)

    def close(self) -> None:
        self._file.close()

    def fileno(self) -> int | None:
        return self._file.fileno()


class _CountingFileSystem(OsFileSystem):
    def __init__(self) -> None:
        super().__init__()
        self.segment_fsyncs = [0]

    def open(self, path: str, *, create: bool = False) -> File:
        file = super().open(path, create=create)
        return _CountingFile(file, self.segment_fsyncs) if path.endswith(".log") else file


@contextmanager
def fresh_log(
    directory: Path, policy: FlushPolicy, fs: OsFileSystem | None = None
) -> Iterator[PartitionLog]:
    """A new empty log in ``directory``, closed afterwards. The files stay until the caller
    removes the whole section: deleting hundreds of MiB between runs (the disk here is mounted
    with ``discard``) would slow the next run's fsyncs."""
    manager = LogManager.open(str(directory), fs=fs, default_config=LogConfig(flush_policy=policy))
    try:
        yield manager.create(TOPIC, 0)
    finally:
        manager.close()


def sync_single_run(directory: Path, batch: bytes, seconds: float) -> Run:
    with fresh_log(directory, FlushPolicy.SYNC) as log:
        latencies: list[float] = []
        cpu, start = time.process_time(), time.perf_counter()
        now = start
        while now - start < seconds:
            info = log.append(batch)
            log.wait_durable(info.last_offset).result()
            done = time.perf_counter()
            latencies.append(done - now)
            now = done
        elapsed, cpu_s = now - start, time.process_time() - cpu
    return Run(len(latencies) * len(batch), len(latencies), elapsed, latencies, cpu_s=cpu_s)


def sync_concurrent_run(directory: Path, batch: bytes, threads: int, seconds: float) -> Run:
    """``threads`` appenders, each appending and then waiting for its own ack, in a loop."""
    fs = _CountingFileSystem()
    with fresh_log(directory, FlushPolicy.SYNC, fs) as log:
        latencies: list[list[float]] = [[] for _ in range(threads)]
        gate = threading.Barrier(threads + 1)
        stop_at = [0.0]

        def appender(mine: list[float]) -> None:
            gate.wait()
            now = time.perf_counter()
            while now < stop_at[0]:
                info = log.append(batch)
                log.wait_durable(info.last_offset).result()
                done = time.perf_counter()
                mine.append(done - now)
                now = done

        workers = [threading.Thread(target=appender, args=(lat,)) for lat in latencies]
        for worker in workers:
            worker.start()
        fsyncs_before = fs.segment_fsyncs[0]
        cpu, start = time.process_time(), time.perf_counter()
        stop_at[0] = start + seconds
        gate.wait()
        for worker in workers:
            worker.join()
        elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        fsyncs = fs.segment_fsyncs[0] - fsyncs_before
    merged = [x for lat in latencies for x in lat]
    return Run(len(merged) * len(batch), len(merged), elapsed, merged, fsyncs, cpu_s=cpu_s)


def sync_pipelined_run(directory: Path, batch: bytes, in_flight: int, seconds: float) -> Run:
    """One thread keeps ``in_flight`` appends waiting for durability, as the broker's event loop
    does for that many producers: it appends, then replaces each ack with a new append.

    Group commit without 64 threads taking turns at the GIL: the difference from
    :func:`sync_concurrent_run` is the cost of Python threads, not of the log.
    """
    fs = _CountingFileSystem()
    with fresh_log(directory, FlushPolicy.SYNC, fs) as log:
        waiting: deque[tuple[float, Future[None]]] = deque()
        latencies: list[float] = []
        cpu, start = time.process_time(), time.perf_counter()
        now = start
        while now - start < seconds:
            while len(waiting) < in_flight:
                info = log.append(batch)
                waiting.append((time.perf_counter(), log.wait_durable(info.last_offset)))
            appended_at, future = waiting.popleft()
            future.result()
            now = time.perf_counter()
            latencies.append(now - appended_at)
        for _, future in waiting:  # drained uncounted: they were still in flight at the end
            future.result()
        elapsed, cpu_s = now - start, time.process_time() - cpu
        fsyncs = fs.segment_fsyncs[0]
    return Run(len(latencies) * len(batch), len(latencies), elapsed, latencies, fsyncs, cpu_s=cpu_s)


def none_run(directory: Path, batch: bytes, seconds: float, max_bytes: int) -> Run:
    """Appends under NONE: what the log costs above copying into the page cache."""
    with fresh_log(directory, FlushPolicy.NONE) as log:
        ops = 0
        limit = max(1, max_bytes // len(batch))
        cpu, start = time.process_time(), time.perf_counter()
        now = start
        while ops < limit and now - start < seconds:
            log.append(batch)
            ops += 1
            now = time.perf_counter()
        elapsed, cpu_s = now - start, time.process_time() - cpu
    return Run(ops * len(batch), ops, elapsed, cpu_s=cpu_s)


# -- (e) reads -----------------------------------------------------------------------------


def fill_log(directory: Path, batch: bytes, total_bytes: int, policy: FlushPolicy) -> int:
    """Append ``total_bytes`` of ``batch`` to topic partition 0 and close cleanly."""
    with LogManager.open(str(directory), default_config=LogConfig(flush_policy=policy)) as manager:
        log = manager.create(TOPIC, 0)
        for _ in range(max(1, total_bytes // len(batch))):
            log.append(batch)
        return log.log_end_offset


def read_run(directory: Path) -> Run:
    with LogManager.open(str(directory)) as manager:
        log = manager.get(TOPIC, 0)
        assert log is not None
        offset, end, total, reads = log.log_start_offset, log.log_end_offset, 0, 0
        start = time.perf_counter()
        while offset < end:
            result = log.read(offset, READ_MAX_BYTES)
            total += len(result.data)
            reads += 1
            offset = result.next_offset
        elapsed = time.perf_counter() - start
    return Run(total, reads, elapsed)


def evict_from_page_cache(directory: Path) -> None:
    """Drop the clean cached pages of every file under ``directory`` (after a sync), so that
    the next read comes from the disk. Touches only our own files, unlike drop_caches."""
    os.sync()
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


# -- (f) recovery, in child processes ------------------------------------------------------


def child_fill(directory: str, total_mib: int, policy: str) -> int:
    """Child: write ``total_mib`` of 1 MiB batches, say so, then wait to be SIGKILLed."""
    parent = os.getppid()
    flush_policy = FlushPolicy(policy)
    manager = LogManager.open(directory, default_config=LogConfig(flush_policy=flush_policy))
    log = manager.create(TOPIC, 0)
    batch = make_batch(LARGE_BYTES)
    for _ in range(total_mib):
        info = log.append(batch)
        if flush_policy is FlushPolicy.SYNC:
            log.wait_durable(info.last_offset).result()
    print(f"filled {log.log_end_offset} {log.segment_count}", flush=True)
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while time.monotonic() < deadline and os.getppid() == parent:
        time.sleep(0.1)  # never closes: the parent kills it, as a crash would
    return 1


@dataclass
class OpenFacts:
    """What a child that opened a data directory saw."""

    open_ms: float
    close_ms: float
    recovered_cleanly: bool
    log_end: int | None
    segments: int | None
    offline: int


def child_open(directory: str, profile: bool) -> int:
    """Child: time ``LogManager.open()`` (and the clean close after it); print JSON."""
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    manager = LogManager.open(directory)
    if profiler is not None:
        profiler.disable()
    open_ms = (time.perf_counter() - start) * 1000
    log = manager.get(TOPIC, 0)
    recovered_cleanly, offline = manager.recovered_cleanly, len(manager.offline)
    log_end = None if log is None else log.log_end_offset
    segments = None if log is None else log.segment_count
    start = time.perf_counter()
    manager.close()
    close_ms = (time.perf_counter() - start) * 1000
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(15)
    facts = OpenFacts(open_ms, close_ms, recovered_cleanly, log_end, segments, offline)
    print(json.dumps(asdict(facts)), flush=True)
    return 0


def _child(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def fill_and_kill(directory: Path, total_mib: int, policy: FlushPolicy) -> None:
    proc = subprocess.Popen(
        _child("fill", str(directory), str(total_mib), policy.value),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("filled "):
            raise RuntimeError(f"the fill child failed (exit {proc.wait()})")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(CHILD_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def open_in_child(directory: Path, *, profile: bool = False) -> OpenFacts:
    args = ["open", str(directory), *(["--profile"] if profile else [])]
    done = subprocess.run(
        _child(*args), capture_output=True, text=True, check=True, timeout=CHILD_TIMEOUT_S
    )
    if profile:
        print(done.stderr)
    facts = OpenFacts(**json.loads(done.stdout.strip().splitlines()[-1]))
    if facts.offline:
        raise RuntimeError(f"recovery refused the partition in {directory}")
    return facts


# -- the run -------------------------------------------------------------------------------


def percentiles_ms(latencies_s: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_s)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "avg": statistics.fmean(ordered) * 1000,
        "max": ordered[-1] * 1000,
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "p99.9": at(0.999),
    }


def perf_test_line(name: str, runs: list[Run]) -> str:
    """kafka-producer-perf-test's summary, over all runs of one measurement."""
    ops = sum(r.ops for r in runs)
    seconds = sum(r.seconds for r in runs)
    mib = sum(r.bytes for r in runs) / MIB
    p = percentiles_ms([x for r in runs for x in r.latencies_s])
    return (
        f"{name}: {ops} records sent, {ops / seconds:.1f} records/sec ({mib / seconds:.2f} "
        f"MB/sec), {p['avg']:.2f} ms avg latency, {p['max']:.2f} ms max latency, "
        f"{p['p50']:.2f} ms 50th, {p['p95']:.2f} ms 95th, {p['p99']:.2f} ms 99th, "
        f"{p['p99.9']:.2f} ms 99.9th."
    )


def describe_filesystem(path: Path) -> str:
    """``fstype device (mount point)`` of the mount holding ``path``, from /proc/self/mounts."""
    real = os.path.realpath(path)
    best = ("?", "?", "/")
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                device, mount_point, fstype, *_ = line.split()
                inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best[2]):
                    best = (fstype, device, mount_point)
    except OSError:
        pass
    return f"{best[0]} on {best[1]} (mounted at {best[2]})"


def settle() -> None:
    """Write back everything dirty, so that one measurement's data does not slow the next."""
    os.sync()


@dataclass
class Config:
    base: Path
    repeats: int
    seconds: float
    threads: int
    none_mib: int
    read_mib: int
    recovery_mib: int
    recovery_policies: list[FlushPolicy]
    profile_recovery: bool
    sections: list[str]


def paired_ratio(runs: list[Run], baselines: list[Run], figure: Callable[[Run], float]) -> float:
    """Median over rounds of (run / baseline of the same round): robust to a disk (or a shared
    machine) that drifts during the bench, since both sides of each ratio ran back to back."""
    return statistics.median(figure(r) / figure(b) for r, b in zip(runs, baselines, strict=True))


def ratio_row(
    name: str,
    unit: str,
    runs: list[Run],
    figure: Callable[[Run], float],
    baselines: list[Run],
    baseline_name: str,
    note: str = "",
) -> Row:
    row = Row(name, unit, [figure(r) for r in runs], note=note)
    row.ratio, row.ratio_to = paired_ratio(runs, baselines, figure), baseline_name
    return row


def cpu_note(runs: list[Run]) -> str:
    return f"{statistics.median(r.cpu_us_per_op for r in runs):.0f} us CPU/op"


def appends_per_fsync(runs: list[Run]) -> str:
    per_fsync = statistics.median(r.ops / max(1, r.fsyncs or 0) for r in runs)
    return f"{per_fsync:.1f} appends/fsync, {cpu_note(runs)}"


@dataclass
class AppendRuns:
    raw: dict[int, list[Run]] = field(default_factory=lambda: {SMALL_BYTES: [], LARGE_BYTES: []})
    sync: dict[int, list[Run]] = field(default_factory=lambda: {SMALL_BYTES: [], LARGE_BYTES: []})
    none: dict[int, list[Run]] = field(default_factory=lambda: {SMALL_BYTES: [], LARGE_BYTES: []})
    raw_write: dict[int, list[Run]] = field(
        default_factory=lambda: {SMALL_BYTES: [], LARGE_BYTES: []}
    )
    threads: list[Run] = field(default_factory=list)
    pipelined: list[Run] = field(default_factory=list)


def run_appends(cfg: Config, work: Path) -> AppendRuns:
    batches = {SMALL_BYTES: make_batch(SMALL_BYTES), LARGE_BYTES: make_batch(LARGE_BYTES)}
    small = batches[SMALL_BYTES]
    runs = AppendRuns()
    section = work / "appends"
    for n in range(cfg.repeats):
        here = section / str(n)
        here.mkdir(parents=True)
        # Each round runs every measurement once, so that a ratio compares runs that saw the
        # same disk; the baseline goes first in even rounds and second in odd ones, so that
        # neither side always inherits the other's write-back. settle() flushes between runs.
        for size, batch in batches.items():
            raw_first = n % 2 == 0
            for raw in (raw_first, not raw_first):
                settle()
                if raw:
                    path = here / f"raw-{size}.bin"
                    runs.raw[size].append(raw_fsync_run(path, size, cfg.seconds))
                else:
                    log_dir = here / f"sync-{size}"
                    runs.sync[size].append(sync_single_run(log_dir, batch, cfg.seconds))
        settle()
        runs.threads.append(sync_concurrent_run(here / "group", small, cfg.threads, cfg.seconds))
        settle()
        runs.pipelined.append(sync_pipelined_run(here / "pipe", small, cfg.threads, cfg.seconds))
        for size, batch in batches.items():
            settle()
            path = here / f"raw-write-{size}.bin"
            limit = cfg.none_mib * MIB
            runs.raw_write[size].append(raw_write_run(path, size, cfg.seconds, limit))
            settle()
            none_dir = here / f"none-{size}"
            runs.none[size].append(none_run(none_dir, batch, cfg.seconds, limit))
    shutil.rmtree(section)
    return runs


def _mib_s(run: Run) -> float:
    return run.mib_per_s


def _ops_s(run: Run) -> float:
    return run.ops_per_s


def append_rows(cfg: Config, runs: AppendRuns, rows: list[Row], lines: list[str]) -> None:
    labels = {SMALL_BYTES: "16 KiB", LARGE_BYTES: "1 MiB"}
    for size, label in labels.items():
        raw = runs.raw[size]
        mib_s = [_mib_s(r) for r in raw]
        rows.append(Row(f"(a) raw write+fsync {label}", "MB/s", mib_s, note=cpu_note(raw)))
        rows.append(Row(f"(a) raw write+fsync {label}", "writes/s", [_ops_s(r) for r in raw]))
    for size, label in labels.items():
        name = f"(b) SYNC 1 appender {label}"
        note = cpu_note(runs.sync[size])
        row = ratio_row(name, "MB/s", runs.sync[size], _mib_s, runs.raw[size], f"(a) {label}", note)
        if size == LARGE_BYTES:
            row.target = f">= {TARGET_SYNC_LARGE_RATIO}x raw"
            row.passed = row.ratio is not None and row.ratio >= TARGET_SYNC_LARGE_RATIO
        rows.append(row)
        lines.append(perf_test_line(f"(a) raw {label}", runs.raw[size]))
        lines.append(perf_test_line(name, runs.sync[size]))

    one_per_append, per_append_name = runs.raw[SMALL_BYTES], "(a) 16 KiB writes/s"
    name = f"(c) SYNC {cfg.threads} appender threads x 16 KiB"
    note = appends_per_fsync(runs.threads)
    row = ratio_row(name, "appends/s", runs.threads, _ops_s, one_per_append, per_append_name, note)
    row.target = f">= {TARGET_GROUP_COMMIT_RATIO:g}x"
    row.passed = row.ratio is not None and row.ratio >= TARGET_GROUP_COMMIT_RATIO
    rows.append(row)
    rows.append(Row(name, "MB/s", [_mib_s(r) for r in runs.threads]))
    lines.append(perf_test_line(name, runs.threads))
    name = f"(c') SYNC {cfg.threads} in flight, 1 thread, 16 KiB"
    note = appends_per_fsync(runs.pipelined)
    rows.append(
        ratio_row(name, "appends/s", runs.pipelined, _ops_s, one_per_append, per_append_name, note)
    )
    lines.append(perf_test_line(name, runs.pipelined))

    for size, label in labels.items():
        baseline = runs.raw_write[size]
        name, mib_s = f"(d) raw write, no fsync {label}", [_mib_s(r) for r in baseline]
        rows.append(Row(name, "MB/s", mib_s, note=cpu_note(baseline)))
        name, note = f"(d) NONE append {label}", cpu_note(runs.none[size])
        rows.append(
            ratio_row(name, "MB/s", runs.none[size], _mib_s, baseline, "raw no fsync", note)
        )


def measure_reads(cfg: Config, work: Path, rows: list[Row]) -> None:
    directory = work / "read"
    fill_log(directory, make_batch(LARGE_BYTES), cfg.read_mib * MIB, FlushPolicy.NONE)
    settle()
    read_run(directory)  # warm: the pages are cached and the indexes loaded once
    hot = [read_run(directory) for _ in range(cfg.repeats)]
    cold = []
    for _ in range(cfg.repeats):
        evict_from_page_cache(directory)
        cold.append(read_run(directory))
    shutil.rmtree(directory)
    size = f"{_size_label(cfg.read_mib)} log"
    rows.append(Row(f"(e) read, page cache ({size})", "MB/s", [r.mib_per_s for r in hot]))
    rows.append(Row(f"(e) read, from disk ({size})", "MB/s", [r.mib_per_s for r in cold]))


def measure_recovery(
    cfg: Config, work: Path, rows: list[Row], facts: list[dict[str, object]]
) -> None:
    """Kill a writer of ``recovery_mib`` and time the open after it, per policy.

    NONE is filled anew for every run: its unsynced tail, which recovery must fsync, is what
    differs from SYNC. Under SYNC every acknowledged byte is already durable, so a run after
    the first tops the same log up by a little (staying in the same, nearly full, active
    segment) and kills the writer again: the same crash, without rewriting 2 GiB each time.
    SYNC also gets a cold-cache open: the crashed files evicted from the page cache first, as
    after a restart of the machine, so recovery reads from the disk.
    """
    size = _size_label(cfg.recovery_mib)
    top_ups = 2 * cfg.repeats
    clean: list[float] = []
    for policy in cfg.recovery_policies:
        hot: list[float] = []
        cold: list[float] = []
        directory = work / f"recovery-{policy.value}"
        for i in range(cfg.repeats):
            sync = policy is FlushPolicy.SYNC
            if i == 0 or not sync:
                shutil.rmtree(directory, ignore_errors=True)
                settle()
                first_mib = cfg.recovery_mib - (top_ups * TOP_UP_MIB if sync else 0)
                fill_and_kill(directory, max(1, first_mib), policy)
            else:
                fill_and_kill(directory, TOP_UP_MIB, policy)
            after_kill = open_in_child(directory, profile=cfg.profile_recovery and i == 0)
            hot.append(after_kill.open_ms)
            run: dict[str, object] = {"policy": policy.value, "after_kill": asdict(after_kill)}
            if sync:
                fill_and_kill(directory, TOP_UP_MIB, policy)
                evict_from_page_cache(directory)
                after_kill_cold = open_in_child(directory)
                cold.append(after_kill_cold.open_ms)
                run["after_kill_cold_cache"] = asdict(after_kill_cold)
            reopened = open_in_child(directory)
            clean.append(reopened.open_ms)
            facts.append(run | {"clean": asdict(reopened)})
        shutil.rmtree(directory, ignore_errors=True)
        name = f"(f) open after SIGKILL, {policy.value.upper()} writer, {size}"
        for label, samples in (("", hot), (", cold cache", cold)):
            if samples:
                row = Row(name + label, "ms", samples, target=f"< {TARGET_RECOVERY_MS:g} ms")
                row.passed = row.median < TARGET_RECOVERY_MS
                rows.append(row)
    rows.append(Row(f"(f) open after clean shutdown, {size}", "ms", clean))


def _size_label(mib: int) -> str:
    return f"{mib / 1024:g} GiB" if mib >= 1024 else f"{mib} MiB"


def print_table(rows: list[Row]) -> None:
    header = ("measurement", "median", "min", "max", "unit", "ratio", "target", "")
    table = [header]
    for row in rows:
        ratio = f"{row.ratio:.2f}x {row.ratio_to}" if row.ratio is not None else ""
        verdict = "" if row.passed is None else ("PASS" if row.passed else "MISS")
        table.append(
            (
                row.name,
                f"{row.median:,.1f}",
                f"{min(row.samples):,.1f}",
                f"{max(row.samples):,.1f}",
                row.unit,
                ratio,
                row.target,
                f"{verdict} {row.note}".strip(),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    right = {1, 2, 3}
    for n, cells in enumerate(table):
        print(
            "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    fill = sub.add_parser("fill", help="(internal) child that writes and waits to be killed")
    fill.add_argument("directory")
    fill.add_argument("mib", type=int)
    fill.add_argument("policy", choices=[p.value for p in FlushPolicy])
    opener = sub.add_parser("open", help="(internal) child that times LogManager.open()")
    opener.add_argument("directory")
    opener.add_argument("--profile", action="store_true")

    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the data goes"
    )
    parser.add_argument("--repeats", type=int, help="runs per measurement (default 5; quick 2)")
    parser.add_argument("--seconds", type=float, help="length of a timed run (1.5; quick 0.2)")
    parser.add_argument("--threads", type=int, default=64, help="concurrent appenders in (c)")
    parser.add_argument("--none-mib", type=int, help="max MiB per NONE run (512; quick 16)")
    parser.add_argument("--read-mib", type=int, help="size of the log read in (e) (1024; quick 16)")
    parser.add_argument(
        "--recovery-mib", type=int, help="size written before the kill in (f) (2048; quick 32)"
    )
    parser.add_argument(
        "--recovery-policy",
        action="append",
        choices=[p.value for p in FlushPolicy],
        help="policy of the killed writer in (f); repeatable (default: sync and none)",
    )
    parser.add_argument(
        "--section",
        action="append",
        choices=SECTIONS,
        help="run only this part, repeatable: appends (a-d), reads (e), recovery (f)",
    )
    parser.add_argument(
        "--profile-recovery", action="store_true", help="cProfile the first recovery of each kind"
    )
    parser.add_argument(
        "--json", type=Path, help=f"where to write the results (default {RESULTS.name})"
    )
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    quick = args.quick

    def pick(value: int | float | None, full: int | float, smoke: int | float) -> int | float:
        return value if value is not None else (smoke if quick else full)

    policies = args.recovery_policy or [FlushPolicy.SYNC.value, FlushPolicy.NONE.value]
    return Config(
        base=args.dir,
        repeats=int(pick(args.repeats, 5, 2)),
        seconds=float(pick(args.seconds, 1.5, 0.2)),
        threads=args.threads,
        none_mib=int(pick(args.none_mib, 512, 16)),
        read_mib=int(pick(args.read_mib, 1024, 16)),
        recovery_mib=int(pick(args.recovery_mib, 2048, 32)),
        recovery_policies=[FlushPolicy(p) for p in policies],
        profile_recovery=args.profile_recovery,
        sections=args.section or list(SECTIONS),
    )


def run_bench(cfg: Config) -> dict[str, object]:
    """Every measurement, on one fresh directory that is removed afterwards (even on failure)."""
    work = Path(tempfile.mkdtemp(prefix="shoal-bench-", dir=cfg.base))
    filesystem = describe_filesystem(work)
    # Other processes on the machine show as load and as noise in the min/max columns.
    load_before = os.getloadavg()
    print(
        f"shoal storage bench: data in {work} [{filesystem}], {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {cfg.repeats} runs each, "
        f"load average {load_before[0]:.2f}; MB = MiB, ratios are medians of per-round ratios",
        flush=True,
    )
    rows: list[Row] = []
    lines: list[str] = []
    recoveries: list[dict[str, object]] = []
    started = time.perf_counter()
    try:
        if "appends" in cfg.sections:
            append_rows(cfg, run_appends(cfg, work), rows, lines)
        if "reads" in cfg.sections:
            measure_reads(cfg, work, rows)
        if "recovery" in cfg.sections:
            measure_recovery(cfg, work, rows, recoveries)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total_s = time.perf_counter() - started
    load_after = os.getloadavg()
    print()
    print_table(rows)
    print()
    for line in lines:
        print(line)
    print(f"\ntotal bench time {total_s:.0f} s; load average {load_after[0]:.2f} at the end")
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "filesystem": filesystem,
            "load_average_1min": {"before": load_before[0], "after": load_after[0]},
        },
        "config": {k: str(v) if isinstance(v, Path | list) else v for k, v in asdict(cfg).items()},
        "rows": [asdict(r) | {"median": r.median} for r in rows],
        "perf_test_lines": lines,
        "recoveries": recoveries,
        "total_s": total_s,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "fill":
        return child_fill(args.directory, args.mib, args.policy)
    if args.command == "open":
        return child_open(args.directory, args.profile)
    results = run_bench(config_from(args))
    json_path: Path = args.json or (QUICK_RESULTS if args.quick else RESULTS)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
