"""What every system's bench adapter shares: result types, percentiles, the paced sender's
schedule, and the child process that runs it.

End-to-end latency is measured the same way for every system: a child process (the *pacer*)
sends ``rate`` records/s, each stamped with the CLOCK_MONOTONIC time it was *due* (not when it
went), and the parent's consumer subtracts that stamp on receipt. A sender or broker that falls
behind therefore shows up as latency instead of hiding it. One machine: the clock is shared.
"""

from __future__ import annotations

import json
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

MIB: Final = 1024 * 1024
STAMP: Final = struct.Struct(">q")
PACER_HEAD_START_NS: Final = 100_000_000
"""The consumer is subscribed before the first record is due."""
LATE_NS: Final = 1_000_000
"""A record sent more than 1 ms after it was due counts as a late send: the sender lagged."""
IDLE_END_S: Final = 1.0
"""After the pacer has exited, the consumer stops once nothing arrived for this long."""
STALL_TIMEOUT_S: Final = 60.0
SUSTAINED_P99_MS_MAX: Final = 1000.0
"""A system whose p99 reaches a second at a fixed offered rate is queueing: it does not keep up."""
SENDER_LAG_END_MS_MAX: Final = 100.0
"""A pacer that ends further behind its schedule than this could not offer the rate."""
SENDER_GIVE_UP_LAG_S: Final = 2.0
"""A pacer this far behind stops sending: the rate is not sustained, and queueing the rest
would only make the run (and the drain of a slow broker) longer, not the verdict different."""
COMPARE: Final = Path(__file__).resolve().parent.parent / "compare.py"


def payload(size: int, due_ns: int) -> bytes:
    return STAMP.pack(due_ns) + b"\0" * max(0, size - STAMP.size)


def due_of(value: bytes) -> int:
    due: int = STAMP.unpack_from(value)[0]
    return due


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {k: float("nan") for k in ("avg", "max", "p50", "p95", "p99", "p99.9")}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "avg": statistics.fmean(ordered),
        "max": ordered[-1],
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "p99.9": at(0.999),
    }


@dataclass
class Throughput:
    records: int
    record_bytes: int
    seconds: float
    client_cpu_s: float
    """CPU the load generator's process used (all its threads): near ``seconds`` means one
    core was busy in the client, i.e. the client may be the limit."""

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "records_per_s": self.records_per_s,
            "mb_per_s": self.records * self.record_bytes / MIB / self.seconds,
            "client_cpu_fraction": self.client_cpu_s / self.seconds,
        }


class Timer:
    """Wall and process CPU time of one measured phase."""

    def __enter__(self) -> Timer:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.wall0
        self.cpu_s = time.process_time() - self.cpu0


@dataclass
class PacerReport:
    sent: int
    gave_up: bool
    """The sender fell more than SENDER_GIVE_UP_LAG_S behind and stopped early."""
    late: int
    lag_end_ms: float
    elapsed_s: float
    ack_latency_ms: dict[str, float] | None = None
    """Send-to-acknowledgement percentiles where the client reports them: the producer's
    half of the end-to-end path, to tell it from the consumer's half."""


@dataclass
class Latency:
    rate: int
    record_bytes: int
    sent: int
    received: int
    pacer: PacerReport
    latencies_ms: list[float] = field(repr=False)
    """After the warm-up."""
    all_latencies_ms: list[float] = field(repr=False)
    """Warm-up included: the figures when a sender that gave up early sent nothing after it."""

    def as_json(self) -> dict[str, Any]:
        lat = percentiles(self.latencies_ms or self.all_latencies_ms)
        sender_kept_up = not self.pacer.gave_up and self.pacer.lag_end_ms <= SENDER_LAG_END_MS_MAX
        broker_kept_up = self.received == self.sent and lat["p99"] <= SUSTAINED_P99_MS_MAX
        return {
            "rate": self.rate,
            "record_bytes": self.record_bytes,
            "sent": self.sent,
            "received": self.received,
            "late_sends": self.pacer.late,
            "sender_gave_up": self.pacer.gave_up,
            "sender_lag_end_ms": self.pacer.lag_end_ms,
            "ack_latency_ms": self.pacer.ack_latency_ms,
            "offered_per_s": self.sent / self.pacer.elapsed_s if self.pacer.elapsed_s else 0.0,
            "sender_kept_up": sender_kept_up,
            "sustained": sender_kept_up and broker_kept_up,
            "warm_up_included": not self.latencies_ms,
            "latency_ms": lat,
        }


# -- the paced sender --------------------------------------------------------------------------


class Schedule:
    """Which records are due: record i is due at start + i / rate."""

    def __init__(self, rate: int, seconds: float) -> None:
        self.total = max(1, int(rate * seconds))
        self.interval_ns = 1_000_000_000 / rate
        self.start_ns = time.monotonic_ns() + PACER_HEAD_START_NS
        self.next = 0
        self.late = 0

    def due_now(self) -> list[int]:
        """The due stamps of every record due by now and not yet sent (maybe none)."""
        now = time.monotonic_ns()
        upto = min(self.total, int((now - self.start_ns) / self.interval_ns) + 1)
        if upto <= self.next:
            return []
        dues = [int(self.start_ns + i * self.interval_ns) for i in range(self.next, upto)]
        self.late += sum(1 for due in dues if now - due > LATE_NS)
        self.next = upto
        return dues

    @property
    def done(self) -> bool:
        if self.next >= self.total:
            return True
        behind_ns = time.monotonic_ns() - (self.start_ns + self.next * self.interval_ns)
        return behind_ns > SENDER_GIVE_UP_LAG_S * 1e9

    def wait_s(self) -> float:
        """Until the next record is due (0 if it already is); at most 1 ms, to stay responsive."""
        due = self.start_ns + self.next * self.interval_ns
        return min(0.001, max(0.0, (due - time.monotonic_ns()) / 1e9))

    def report(self) -> PacerReport:
        now = time.monotonic_ns()
        last_due = self.start_ns + (self.next - 1) * self.interval_ns
        return PacerReport(
            sent=self.next,
            gave_up=self.next < self.total,
            late=self.late,
            lag_end_ms=max(0.0, (now - last_due) / 1e6),
            elapsed_s=(now - self.start_ns) / 1e9,
        )


def pace_sync(send: Callable[[list[int]], None], rate: int, seconds: float) -> PacerReport:
    """Send on schedule with a blocking client: ``send(dues)`` sends one record per stamp."""
    schedule = Schedule(rate, seconds)
    while not schedule.done:
        dues = schedule.due_now()
        if dues:
            send(dues)
        else:
            time.sleep(schedule.wait_s())
    return schedule.report()


async def pace_async(
    send: Callable[[list[int]], Awaitable[None]], rate: int, seconds: float
) -> PacerReport:
    import asyncio

    schedule = Schedule(rate, seconds)
    while not schedule.done:
        dues = schedule.due_now()
        if dues:
            await send(dues)
        else:
            await asyncio.sleep(schedule.wait_s())
    return schedule.report()


def print_report(report: PacerReport) -> None:
    """The pacer child's last line on stdout, read by :func:`finish_pacer`."""
    print(json.dumps(asdict(report)), flush=True)


def start_pacer(
    system: str, url: str, dest: str, rate: int, seconds: float, size: int
) -> subprocess.Popen[str]:
    """``compare.py pace ...`` in a child process: the sender is never slowed by the consumer."""
    return subprocess.Popen(
        [sys.executable, str(COMPARE), "pace", system, url, dest,
         str(rate), str(seconds), str(size)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def finish_pacer(child: subprocess.Popen[str]) -> PacerReport:
    assert child.stdout is not None
    out = child.stdout.read()
    code = child.wait()
    if code != 0 or not out.strip():
        raise RuntimeError(f"the pacer exited with {code}: {out[-2000:]}")
    return PacerReport(**json.loads(out.strip().splitlines()[-1]))


class Collector:
    """The consumer's side of a latency run: stamps in, latencies out, and when to stop."""

    def __init__(self, child: subprocess.Popen[str], warmup_s: float) -> None:
        self.child = child
        self.warmup_ns = int(warmup_s * 1e9)
        self.first_due: int | None = None
        self.received = 0
        self.latencies_ms: list[float] = []
        self.all_latencies_ms: list[float] = []
        self.last_progress = time.monotonic()

    def add(self, values: list[bytes], received_ns: list[int] | None = None) -> None:
        """Record ``values`` received now, or at ``received_ns`` (one stamp per value) when a
        callback took them earlier than this call."""
        now = time.monotonic_ns()
        for i, value in enumerate(values):
            if received_ns is not None:
                now = received_ns[i]
            due = due_of(value)
            if self.first_due is None:
                self.first_due = due
            latency_ms = (now - due) / 1e6
            self.all_latencies_ms.append(latency_ms)
            if due - self.first_due >= self.warmup_ns:
                self.latencies_ms.append(latency_ms)
        self.received += len(values)
        if values:
            self.last_progress = time.monotonic()

    @property
    def finished(self) -> bool:
        idle_s = time.monotonic() - self.last_progress
        if self.child.poll() is not None and idle_s > IDLE_END_S:
            return True
        if idle_s > STALL_TIMEOUT_S:
            raise RuntimeError(f"latency consumer stalled at {self.received} records")
        return False

    def result(self, rate: int, size: int) -> Latency:
        report = finish_pacer(self.child)
        return Latency(
            rate, size, report.sent, self.received, report, self.latencies_ms, self.all_latencies_ms
        )
