"""The whole broker losing power, on the fault layer: acknowledged means durable.

The broker runs in this process on the in-memory fault layer (power_broker.py); each power loss
keeps only what was fsynced (or, half the time, also a random prefix of the rest, as a kernel
may have written some back), and the broker recovers from that. Quick mode in ``make test``;
``make reliability`` sets ``SHOAL_RELIABILITY_POWER_LOSSES`` for the full run.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Iterator
from typing import Final

import pytest

from shoal.coordinator import offsets_log
from shoal.coordinator.offsets_log import Entry, OffsetsLog
from shoal.storage import FlushPolicy
from tests.reliability.checker import Report, check
from tests.reliability.history import Write
from tests.reliability.power_broker import PowerBroker
from tests.reliability.workload import Workload, WorkloadSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600 * 4)]

POWER_LOSSES: Final = int(os.environ.get("SHOAL_RELIABILITY_POWER_LOSSES", "3"))
PER_ROUND: Final = 10
GAP_S: Final = (2.0, 4.0)
QUIET_S: Final = 2.0
"""Producers stay silent this long before a quiet power loss: the group reads up and commits."""


def _run(broker: PowerBroker, losses: int, seed: int, *, broken: bool = False) -> Report:
    """One workload through ``losses`` power losses. A ``broken`` broker may make producers
    fail fatally (a sequence gap where acknowledged batches vanished); a sound one never."""
    rng = random.Random(seed)
    workload = Workload(broker.bootstrap_servers, WorkloadSettings(topic=f"power-{seed}"))
    workload.create_topic()
    workload.start()
    try:
        for number in range(losses):
            time.sleep(rng.uniform(*GAP_S))
            keep = rng.random() < 0.5
            quiet = number % 2 == 0
            if quiet:  # half the losses hit a broker whose last writes were commits
                workload.quiet()
                time.sleep(QUIET_S)
            broker.power_loss(keep_unsynced=keep)
            workload.loud()
            workload.history.fault(f"power loss (keep_unsynced={keep}, quiet={quiet})")
    finally:
        started = time.monotonic()
        workload.stop()
        print(f"workload stopped in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    report = check(workload.history, workload.read_back())
    print(f"read back and checked in {time.monotonic() - started:.1f} s")
    assert broken or not workload.fatal_errors, workload.fatal_errors
    return report


@pytest.fixture
def power_broker() -> Iterator[PowerBroker]:
    broker = PowerBroker(seed=11).start()
    yield broker
    broker.stop()


def test_nothing_acknowledged_is_lost_across_power_losses(power_broker: PowerBroker) -> None:
    remaining, number = POWER_LOSSES, 0
    while remaining > 0:
        losses = min(PER_ROUND, remaining)
        seed = 2000 + number
        report = _run(power_broker, losses, seed)
        print(f"round {number} (seed {seed}, {losses} power losses): {report.summary()}")
        assert report.valid, f"seed {seed}: {report.summary()}\n{report.anomalies}"
        assert report.acknowledged > 0 and report.read_by_group > 0
        remaining -= losses
        number += 1


def test_the_checker_catches_acknowledgements_before_fsync() -> None:
    """flush_policy=none acknowledges before the fsync: a power loss must show lost writes."""
    broker = PowerBroker(seed=12, flush_policy=FlushPolicy.NONE).start()
    try:
        report = _run(broker, 3, seed=13, broken=True)
    finally:
        broker.stop()
    print(report.summary())
    assert report.lost, f"acknowledged-before-durable went unnoticed: {report.summary()}"


DISK_FULL_EPISODES: Final = int(os.environ.get("SHOAL_RELIABILITY_DISK_FULL", "2"))
DISK_FULL_S: Final = 3.0


def test_a_full_disk_refuses_writes_and_the_broker_recovers_when_space_is_freed(
    power_broker: PowerBroker,
) -> None:
    """The disk fills (every write fails with ENOSPC) for a few seconds, then space is freed:
    nothing acknowledged is lost, and writes are acknowledged again after each episode."""
    rng = random.Random(21)
    workload = Workload(power_broker.bootstrap_servers, WorkloadSettings(topic="disk-full"))
    workload.create_topic()
    workload.start()
    acked_after: list[int] = []
    try:
        for _ in range(DISK_FULL_EPISODES):
            time.sleep(rng.uniform(*GAP_S))
            power_broker.fs.space_left_bytes = 0
            workload.history.fault("disk full")
            time.sleep(DISK_FULL_S)
            power_broker.fs.space_left_bytes = None
            freed_at = len(workload.history.events)
            time.sleep(GAP_S[0])
            acked_after.append(
                sum(
                    1
                    for e in workload.history.events[freed_at:]
                    if isinstance(e, Write) and e.acked
                )
            )
    finally:
        workload.stop()
    report = check(workload.history, workload.read_back())
    print(
        f"{DISK_FULL_EPISODES} disk-full episodes: {report.summary()}; acked after: {acked_after}"
    )
    assert report.valid, report.anomalies
    assert not workload.fatal_errors, workload.fatal_errors
    assert all(count > 0 for count in acked_after), acked_after


def test_the_checker_catches_commits_acknowledged_before_fsync(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker that answers OffsetCommit without waiting for the offsets log's fsync: a power
    loss must show a consumer resuming from before an acknowledged commit."""

    def append_without_fsync(self: OffsetsLog, entries: Iterable[Entry]) -> None:
        records = [offsets_log.SimpleRecord(key, value) for key, value in entries]
        now = self._clock.now_ms()
        for start in range(0, len(records), offsets_log.RECORDS_PER_BATCH_MAX):
            chunk = records[start : start + offsets_log.RECORDS_PER_BATCH_MAX]
            self._write(offsets_log.build_batch(chunk, base_timestamp=now))
        return None  # "nothing to wait for": the planted bug (no fsync is even asked for)

    monkeypatch.setattr(OffsetsLog, "append", append_without_fsync)
    broker = PowerBroker(seed=14).start()
    try:
        report = _run(broker, 3, seed=15)
    finally:
        broker.stop()
    print(report.summary())
    assert report.lost_commits, (
        f"commits acknowledged before fsync went unnoticed: {report.summary()}"
    )
