"""Faults injected into a broker child process while the workload runs."""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass

from tests.reliability.history import History
from tests.support.broker import BrokerProcess


@dataclass
class FaultPlan:
    kills: int
    """SIGKILLs, each followed by a restart on the same port (clients find it where it was)."""
    pauses: int
    """SIGSTOP ... SIGCONT, each longer than the group's session timeout."""
    pause_s: float
    gap_s: tuple[float, float] = (2.0, 5.0)
    """Seconds of normal service between two faults, drawn uniformly."""


def inject(process: BrokerProcess, plan: FaultPlan, history: History, seed: int) -> None:
    """Run the plan's faults in a random order (from ``seed``), with service in between."""
    rng = random.Random(seed)
    faults = ["kill"] * plan.kills + ["pause"] * plan.pauses
    rng.shuffle(faults)
    for fault in faults:
        time.sleep(rng.uniform(*plan.gap_s))
        if fault == "kill":
            port = process.kafka_port
            process.kill()
            history.fault(f"SIGKILL at {time.time():.3f}")
            time.sleep(rng.uniform(0.0, 0.5))
            process.start(kafka_port=port)
        else:
            assert process.process is not None
            pid = process.process.pid
            os.kill(pid, signal.SIGSTOP)
            history.fault(f"SIGSTOP for {plan.pause_s:g} s at {time.time():.3f}")
            try:
                time.sleep(plan.pause_s)
            finally:
                os.kill(pid, signal.SIGCONT)
