"""Consumers of one group SIGKILLed during rebalances while others join and leave.

The workload's producers run in this process; its consumers run in child processes
(consumer_child.py) streaming what they read, where they resumed and which commits were
acknowledged into the same history. A seeded schedule kills a member (SIGKILL: no LeaveGroup,
the group waits out its session timeout), starts a new one, or lets one leave cleanly, a second
or two apart, so kills land inside the rebalances the joins and leaves start. The checker's
rules catch a committed offset going backwards (a lost commit) and a committed record skipped.

Quick mode in ``make test``; ``make reliability`` sets ``SHOAL_RELIABILITY_CONSUMER_KILLS``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from typing import Final

import pytest

from tests.reliability.checker import check
from tests.reliability.fleet import SESSION_TIMEOUT_MS, ConsumerFleet
from tests.reliability.power_broker import PowerBroker
from tests.reliability.workload import Workload, WorkloadSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600 * 4)]

CONSUMER_KILLS: Final = int(os.environ.get("SHOAL_RELIABILITY_CONSUMER_KILLS", "3"))
MEMBERS: Final = (1, 4)
"""Fewest and most live consumers the schedule keeps (partitions: 3, so some sit idle)."""
GAP_S: Final = (1.0, 2.0)
"""Between two membership changes: shorter than a rebalance under a dead member's session
timeout, so changes pile onto rebalances in progress."""


@pytest.fixture
def power_broker() -> Iterator[PowerBroker]:
    broker = PowerBroker(seed=41, group_min_session_timeout_ms=SESSION_TIMEOUT_MS).start()
    yield broker
    broker.stop()


def test_consumer_crashes_during_rebalances_never_move_commits_back_or_skip(
    power_broker: PowerBroker,
) -> None:
    rng = random.Random(42)
    settings = WorkloadSettings(topic="consumer-crashes", consumers=0)
    workload = Workload(power_broker.bootstrap_servers, settings)
    workload.create_topic()
    fleet = ConsumerFleet(power_broker.bootstrap_servers, workload.settings.topic, workload.history)
    workload.start()
    kills = 0
    try:
        for _ in range(2):
            fleet.join()
        while kills < CONSUMER_KILLS:
            time.sleep(rng.uniform(*GAP_S))
            live = len(fleet.alive)
            choice = rng.choice(["kill", "kill", "join", "leave"])
            if choice == "kill" and live > MEMBERS[0]:
                fleet.kill(rng)
                kills += 1
            elif choice == "leave" and live > MEMBERS[0]:
                fleet.leave(rng)
            elif live < MEMBERS[1]:
                fleet.join()
        fleet.join()  # a fresh member to read what the killed ones held
    finally:
        workload.stop()
        fleet.stop()
    report = check(workload.history, workload.read_back())
    commits = len(workload.history.commits)
    print(f"{kills} consumer kills, {fleet.started} members: {report.summary()}; {commits} commits")
    assert report.valid, report.anomalies
    assert not workload.fatal_errors, workload.fatal_errors
    assert report.acknowledged > 0 and commits > 0
    assert report.read_by_group >= report.acknowledged, "the group did not read everything"
    assert len(workload.history.resumes) > kills, "no member resumed from a committed offset"
