"""The deterministic simulation (tests/simulation/sim.py): many seeds keep every invariant, a
seed replays exactly, and a planted bug is caught.

Quick mode here; ``make simulate`` runs thousands of seeds, and ``make simulate SEED=n``
replays one, printing its trace on failure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.simulation import plants
from tests.simulation.runner import run_seeds, seeds_from_env
from tests.simulation.sim import Simulation


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    # Each crash makes recovery log torn tails at WARNING: thousands of lines of expected noise.
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def test_every_seed_keeps_the_invariants() -> None:
    seeds, steps = seeds_from_env()
    totals = run_seeds(seeds, steps)
    print(totals.summary())
    assert not totals.failures, totals.failures[0]
    assert totals.power_losses > 0 and totals.acked_batches > 0, totals.summary()


def test_a_seed_replays_exactly() -> None:
    first, second = Simulation(7, 150), Simulation(7, 150)
    first.run()
    second.run()
    assert first.trace == second.trace
    assert first.fs.fsync_count == second.fs.fsync_count


def test_acknowledging_before_the_fsync_is_caught() -> None:
    seeds, steps = seeds_from_env()
    with plants.ack_before_fsync():
        totals = run_seeds(seeds, steps)
    assert totals.failures, f"the planted bug went unnoticed over {totals.summary()}"
    assert "is lost" in totals.failures[0], totals.failures[0]
    assert "make simulate SEED=" in totals.failures[0]  # the replay command, then the trace
