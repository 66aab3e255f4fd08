"""Many seeds in a row, for the test (quick mode) and ``make simulate`` (full mode).

Environment: ``SHOAL_SIM_SEED`` replays one seed; ``SHOAL_SIM_SEEDS`` (how many seeds, from
``SHOAL_SIM_FIRST_SEED``) and ``SHOAL_SIM_STEPS`` (steps per seed) size a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from tests.simulation.model import Violation
from tests.simulation.sim import Simulation

QUICK_SEEDS: Final = 200
QUICK_STEPS: Final = 100


@dataclass
class Totals:
    seeds: int = 0
    steps: int = 0
    power_losses: int = 0
    process_crashes: int = 0
    acked_batches: int = 0
    enospc: int = 0
    eio: int = 0
    clean_restarts: int = 0
    cleans: int = 0
    compacted_writes: int = 0
    share_deliveries: int = 0
    share_acks: int = 0
    offsets_committed: int = 0
    txns_committed: int = 0
    txns_other: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.seeds} seeds, {self.steps} steps: {self.power_losses} power losses, "
            f"{self.process_crashes} process crashes, {self.clean_restarts} clean restarts, "
            f"{self.enospc} ENOSPC and {self.eio} EIO armed; {self.acked_batches} batches "
            f"and {self.offsets_committed} offset commits acknowledged, {self.txns_committed} "
            f"transactions committed, {self.txns_other} aborted or abandoned; "
            f"{self.cleans} cleans, {self.compacted_writes} keyed writes acknowledged to the "
            f"compacted topic; {self.share_deliveries} share-group deliveries and "
            f"{self.share_acks} acknowledgements answered NONE; "
            f"{len(self.failures)} failed"
        )


def seeds_from_env() -> tuple[list[int], int]:
    steps = int(os.environ.get("SHOAL_SIM_STEPS", QUICK_STEPS))
    one = os.environ.get("SHOAL_SIM_SEED")
    if one:
        return [int(one)], steps
    first = int(os.environ.get("SHOAL_SIM_FIRST_SEED", 0))
    count = int(os.environ.get("SHOAL_SIM_SEEDS", QUICK_SEEDS))
    return list(range(first, first + count)), steps


def run_seeds(seeds: list[int], steps: int, *, stop_at_first: bool = True) -> Totals:
    totals = Totals()
    for seed in seeds:
        try:
            stats = Simulation(seed, steps).run()
        except Violation as exc:
            totals.seeds += 1
            totals.failures.append(str(exc))
            if stop_at_first:
                break
            continue
        totals.seeds += 1
        totals.steps += stats.steps + 1
        totals.power_losses += stats.power_losses
        totals.process_crashes += stats.process_crashes
        totals.acked_batches += stats.acked_batches
        totals.enospc += stats.enospc
        totals.eio += stats.eio
        totals.clean_restarts += stats.clean_restarts
        totals.cleans += stats.cleans
        totals.compacted_writes += stats.compacted_writes
        totals.share_deliveries += stats.share_deliveries
        totals.share_acks += stats.share_acks
        totals.offsets_committed += stats.offsets_committed
        totals.txns_committed += stats.txns_committed
        totals.txns_other += stats.txns_aborted_or_lost
    return totals
