"""The whole broker under faults, checked like Jepsen's Kafka queue workload.

Producers (idempotent and not) and a consumer group run against a broker child process while it
is SIGKILLed and restarted, and paused (SIGSTOP) for longer than the group's session timeout.
The checker (checker.py) then compares what clients were told with what the log holds.

Quick mode (inside ``make test``): a few faults. Full mode (``make reliability``): set
``SHOAL_RELIABILITY_KILLS`` and ``SHOAL_RELIABILITY_PAUSES`` (the make target asks for 500 and
100, in rounds of a fresh workload each).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

import pytest

from tests.reliability.checker import Report, check
from tests.reliability.faults import FaultPlan, inject
from tests.reliability.workload import SESSION_TIMEOUT_MS, Workload, WorkloadSettings
from tests.support.broker import BrokerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600 * 4)]

KILLS: Final = int(os.environ.get("SHOAL_RELIABILITY_KILLS", "4"))
PAUSES: Final = int(os.environ.get("SHOAL_RELIABILITY_PAUSES", "1"))
FAULTS_PER_ROUND: Final = 20
"""A long run is cut into rounds of a fresh topic and clients, so each round's history and log
stay small enough to check quickly, and a failure names the round's seed."""
REBALANCE_DELAY_MS: Final = 300
"""group.initial.rebalance.delay.ms: Kafka's 3 s would leave a group that restarts with the
broker every few seconds too little time between faults to read anything."""
PLANTED_KILLS_MAX: Final = 12
"""The budget within which the checker must catch a planted bug."""
PLANTED_KILLS_PER_ROUND: Final = 3
"""The budget is spent in rounds of this many kills, each a fresh workload, and the test ends
with the first round that catches the bug (all 12 in one round took 45 s of CI)."""


def _run_round(process: BrokerProcess, plan: FaultPlan, seed: int) -> Report:
    workload = Workload(process.bootstrap_servers, WorkloadSettings(topic=f"reliability-{seed}"))
    workload.create_topic()
    workload.start()
    try:
        inject(process, plan, workload.history, seed)
    finally:
        workload.stop()
    report = check(workload.history, workload.read_back())
    assert not workload.fatal_errors, workload.fatal_errors
    return report


def _rounds(kills: int, pauses: int) -> list[FaultPlan]:
    pause_s = SESSION_TIMEOUT_MS / 1000 + 2
    plans = []
    while kills > 0 or pauses > 0:
        share = min(FAULTS_PER_ROUND, kills + pauses)
        round_pauses = min(pauses, max(1 if pauses else 0, share * pauses // (kills + pauses)))
        round_kills = min(kills, share - round_pauses)
        plans.append(FaultPlan(kills=round_kills, pauses=round_pauses, pause_s=pause_s))
        kills -= round_kills
        pauses -= round_pauses
    return plans


def test_nothing_acknowledged_is_lost_duplicated_or_reordered_under_kills_and_pauses(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    process = broker_process(group_initial_rebalance_delay_ms=REBALANCE_DELAY_MS)
    for number, plan in enumerate(_rounds(KILLS, PAUSES)):
        seed = 1000 + number
        report = _run_round(process, plan, seed)
        print(f"round {number} (seed {seed}, {plan}): {report.summary()}")
        assert report.valid, f"seed {seed}: {report.summary()}\n{report.anomalies}"
        assert report.acknowledged > 0
        assert report.read_by_group > 0


def test_the_checker_catches_a_broker_that_forgets_idempotence(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    """A retry after a kill is appended again: the checker must report duplicates, within
    :data:`PLANTED_KILLS_MAX` kills, in rounds that stop as soon as one reports them."""
    process = broker_process(
        plant="forget-idempotence", group_initial_rebalance_delay_ms=REBALANCE_DELAY_MS
    )
    plan = FaultPlan(kills=PLANTED_KILLS_PER_ROUND, pauses=0, pause_s=0, gap_s=(0.5, 1.5))
    summaries = []
    for number in range(PLANTED_KILLS_MAX // PLANTED_KILLS_PER_ROUND):
        report = _run_round(process, plan, seed=7 + number)
        summaries.append(report.summary())
        print(f"planted round {number}: {summaries[-1]}")
        if report.duplicated:
            return
    pytest.fail(f"the planted bug went unnoticed in {PLANTED_KILLS_MAX} kills: {summaries}")
