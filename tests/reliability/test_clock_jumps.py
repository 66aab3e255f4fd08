"""The broker's wall clock jumps forward and back while the workload runs.

The broker (power_broker.py, in this process) reads a :class:`SkewedClock`: the system's wall
clock plus a skew the test moves, and the system's monotonic clock untouched, as when an
operator or NTP steps a machine's time. What Apache Kafka does, and shoal must match:

- **Retention** compares the wall clock with each segment's largest timestamp
  (``retention.ms``). A backward jump makes data look younger: nothing is deleted early. A
  forward jump ages it, and data then past ``retention.ms`` is deleted, as it would be had the
  time really passed (the jumps here stay inside ``retention.ms``: nothing may go).
- **Group session timeouts** run on Kafka's timing wheel, driven by a monotonic clock: a wall
  clock jump neither expires live members nor keeps a dead one. Here a consumer is SIGKILLed
  after the backward jump and the group must still take its partitions over and read
  everything (a session timer on the wall clock would keep the dead member for the jump).
- **LogAppendTime** stamps each batch with the broker's wall clock at append, unclamped: after
  a backward jump the log's timestamps go back too. Every record read back must carry
  LogAppendTime and a time the broker's clock showed during the run.
- No component may crash on either jump: the checker's usual rules (nothing acknowledged lost,
  duplicated or reordered, commits kept) hold throughout.

Quick mode in ``make test``; ``make reliability`` sets ``SHOAL_RELIABILITY_CLOCK_JUMPS``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from typing import Final

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

from tests.reliability.checker import check
from tests.reliability.fleet import SESSION_TIMEOUT_MS, ConsumerFleet
from tests.reliability.power_broker import PowerBroker
from tests.reliability.workload import Workload, WorkloadSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600 * 4)]

CLOCK_JUMPS: Final = int(os.environ.get("SHOAL_RELIABILITY_CLOCK_JUMPS", "2"))
RETENTION_MS: Final = 3_600_000
"""The topic's retention.ms: an hour, longer than any jump, so nothing written may expire."""
JUMP_MS: Final = (-900_000, 900_000)
"""Each jump is drawn from here (a quarter of an hour either way); the first goes forward and
the second back past zero, the rest at random."""
SKEW_MS_MAX: Final = RETENTION_MS // 4
"""The skew stays within this either way, so the oldest record's age by the most advanced
clock stays under ``RETENTION_MS``: retention has nothing it may delete."""
SEGMENT_MS: Final = 1_000
"""segment.ms: segments roll every second or so (by the broker's clock, as Kafka's do), so
retention has sealed segments to judge, not only the active one."""
SERVICE_S: Final = 2.0
SLACK_MS: Final = 5_000
"""How far a record's LogAppendTime may sit outside the skewed clock's range over the run."""


class SkewedClock:
    """The system clock, its wall-clock half moved by ``skew_ms``."""

    def __init__(self) -> None:
        self.skew_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.skew_ms

    def monotonic_ms(self) -> float:
        return time.monotonic() * 1000.0


@pytest.fixture
def clock() -> SkewedClock:
    return SkewedClock()


@pytest.fixture
def power_broker(clock: SkewedClock) -> Iterator[PowerBroker]:
    broker = PowerBroker(
        seed=61, clock=clock, group_min_session_timeout_ms=SESSION_TIMEOUT_MS
    ).start()
    yield broker
    broker.stop()


def _jumps(rng: random.Random) -> list[int]:
    skews, skew = [], 0
    for number in range(CLOCK_JUMPS):
        if number < 2:
            jump = JUMP_MS[1] if number == 0 else JUMP_MS[0] * 2
        else:
            jump = rng.randint(*JUMP_MS)
        skew = max(-SKEW_MS_MAX, min(SKEW_MS_MAX, skew + jump))
        skews.append(skew)
    return skews


def test_clock_jumps_expire_nothing_early_and_keep_sessions_and_timestamps_sane(
    power_broker: PowerBroker, clock: SkewedClock
) -> None:
    rng = random.Random(62)
    settings = WorkloadSettings(
        topic="clock-jumps",
        consumers=0,
        topic_configs={
            "message.timestamp.type": "LogAppendTime",
            "retention.ms": str(RETENTION_MS),
            "segment.ms": str(SEGMENT_MS),
        },
    )
    workload = Workload(power_broker.bootstrap_servers, settings)
    workload.create_topic()
    fleet = ConsumerFleet(power_broker.bootstrap_servers, settings.topic, workload.history)
    skews = [0]
    started_ms = clock.now_ms()
    deleted = 0
    workload.start()
    try:
        fleet.join()
        fleet.join()
        for skew in _jumps(rng):
            time.sleep(SERVICE_S)
            clock.skew_ms = skew
            skews.append(skew)
            workload.history.fault(f"wall clock skew {skew} ms")
            deleted += power_broker.apply_retention()
            if skew < 0:
                fleet.kill(rng)  # its session must still expire on time
                fleet.join()  # two members again, for the next backward jump
        time.sleep(SERVICE_S)
        deleted += power_broker.apply_retention()
    finally:
        workload.stop()
        fleet.stop()
    ended_ms = clock.now_ms() - clock.skew_ms
    assert deleted == 0, f"retention deleted {deleted} segments of unexpired data"
    report = check(workload.history, workload.read_back())
    print(f"{CLOCK_JUMPS} clock jumps to {skews[1:]} ms: {report.summary()}")
    assert report.valid, report.anomalies
    assert not workload.fatal_errors, workload.fatal_errors
    assert report.acknowledged > 0
    assert report.read_by_group >= report.acknowledged, "the group did not read everything"
    earliest = started_ms + min(skews) - SLACK_MS
    latest = ended_ms + max(skews) + SLACK_MS
    stamps = list(workload.timestamps.values())
    assert stamps and all(kind == TIMESTAMP_LOG_APPEND_TIME for kind, _ in stamps)
    insane = [ts for _, ts in stamps if not earliest <= ts <= latest]
    assert not insane, f"{len(insane)} timestamps outside [{earliest}, {latest}]: {insane[:5]}"
    if min(skews) < 0:  # the broker followed its clock back, as Kafka does (no clamping)
        assert min(ts for _, ts in stamps) < started_ms - SLACK_MS
