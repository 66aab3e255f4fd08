"""The deterministic simulation (tests/simulation/sim.py): many seeds keep every invariant, a
seed replays exactly, and a planted bug is caught.

Quick mode here; ``make simulate`` runs thousands of seeds, and ``make simulate SEED=n``
replays one, printing its trace on failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Final

from tests.simulation import plants
from tests.simulation.runner import run_seeds, seeds_from_env
from tests.simulation.sim import Simulation

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
SANITY_SEEDS_MIN: Final = 50
REPLAY_TIMEOUT_S: Final = 120.0
"""A bound on one seed's run in a subprocess (it takes well under a second)."""


def test_every_seed_keeps_the_invariants() -> None:
    seeds, steps = seeds_from_env()
    totals = run_seeds(seeds, steps)
    print(totals.summary())
    assert not totals.failures, totals.failures[0]
    if len(seeds) >= SANITY_SEEDS_MIN:  # not when replaying one seed
        # Many seeds that never lost power or acknowledged a write would prove nothing.
        assert totals.power_losses > 0 and totals.acked_batches > 0, totals.summary()


def test_a_seed_replays_exactly() -> None:
    first, second = Simulation(7, 150), Simulation(7, 150)
    first.run()
    second.run()
    assert first.trace == second.trace
    assert first.fs.fsync_count == second.fs.fsync_count


def test_a_seed_replays_exactly_in_another_process() -> None:
    """A replay runs in a new process: nothing may depend on string hashing (set order)."""
    traces = []
    for hash_seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-m", "tests.simulation.trace", "11", "400"],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=REPLAY_TIMEOUT_S,
            check=True,
        )
        traces.append(done.stdout)
    assert traces[0] == traces[1]
    assert "POWER LOSS" in traces[0]


def test_acknowledging_before_the_fsync_is_caught() -> None:
    seeds, steps = seeds_from_env()
    with plants.ack_before_fsync():
        totals = run_seeds(seeds, steps)
    assert totals.failures, f"the planted bug went unnoticed over {totals.summary()}"
    assert "is lost" in totals.failures[0], totals.failures[0]
    assert "make simulate SEED=" in totals.failures[0]  # the replay command, then the trace


def test_acknowledging_on_another_logs_fsync_is_caught() -> None:
    """Seen when a flusher round finishes some logs' fsyncs and not others (the seed picks
    which, and in which order), then the power goes: with every round finishing all of them
    in request order, 1 of the 200 quick seeds caught it (through an injected EIO), against
    16 of 200 with the seed's choice. The answers it frees early are produces' and offset
    commits' (``__consumer_offsets`` is a log too): a lost batch or a lost commit."""
    seeds, steps = seeds_from_env()
    with plants.ack_on_another_logs_flush():
        totals = run_seeds(seeds, steps)
    assert totals.failures, f"the planted bug went unnoticed over {totals.summary()}"
    first = totals.failures[0]
    # A batch, a compacted key's latest write or an offset commit: whichever a seed loses first.
    assert any(
        what in first for what in ("is lost", "older than the acknowledged", "committed offset")
    ), first


def test_acknowledging_a_commit_before_its_fsync_is_caught() -> None:
    """The plant answers every write to ``__consumer_offsets`` before its fsync: offset
    commits, and KIP-848 groups' state (a member then finds its group or its epoch gone)."""
    seeds, steps = seeds_from_env()
    with plants.commit_before_fsync():
        totals = run_seeds(seeds, steps)
    assert totals.failures, f"the planted bug went unnoticed over {totals.summary()}"
    # An offset commit, or a KIP-848 group's state (also a record of __consumer_offsets).
    first = totals.failures[0]
    assert any(
        what in first for what in ("committed offset", "GROUP_ID_NOT_FOUND", "restart forgot")
    ), first


def test_showing_aborted_data_to_read_committed_is_caught() -> None:
    seeds, steps = seeds_from_env()
    with plants.forget_aborted_transactions():
        totals = run_seeds(seeds, steps)
    assert totals.failures, f"the planted bug went unnoticed over {totals.summary()}"
    assert "never committed" in totals.failures[0], totals.failures[0]


def test_an_exception_the_broker_only_logs_is_caught() -> None:
    seeds, steps = seeds_from_env()
    with plants.failing_group_timer():
        totals = run_seeds(seeds, steps)
    assert totals.failures, f"the planted bug went unnoticed over {totals.summary()}"
    assert "planted: the group timer failed" in totals.failures[0], totals.failures[0]


def test_committing_an_aborted_transactions_offsets_is_caught() -> None:
    seeds, steps = seeds_from_env()
    with plants.commit_aborted_txn_offsets():
        totals = run_seeds(seeds, steps)
    assert totals.failures, f"the planted bug went unnoticed over {totals.summary()}"
    assert "from no committed transaction" in totals.failures[0], totals.failures[0]


def test_answering_delete_records_before_its_checkpoint_is_caught() -> None:
    seeds, steps = seeds_from_env()
    with plants.delete_records_before_checkpoint():
        totals = run_seeds(seeds, steps)
    assert totals.failures, f"the planted bug went unnoticed over {totals.summary()}"
    assert "which a DeleteRecords answered" in totals.failures[0], totals.failures[0]


def test_a_deleted_topics_data_coming_back_is_caught() -> None:
    seeds, steps = seeds_from_env()
    with plants.delete_topic_leaves_files():
        totals = run_seeds(seeds, steps)
    assert totals.failures, f"the planted bug went unnoticed over {totals.summary()}"
    assert "batches of a deleted topic came back" in totals.failures[0], totals.failures[0]


def test_swapping_in_an_unsynced_cleaned_segment_is_caught() -> None:
    seeds, steps = seeds_from_env()
    with plants.swap_in_unsynced_cleaned_segment():
        totals = run_seeds(seeds, steps)
    assert totals.failures, f"the planted bug went unnoticed over {totals.summary()}"
    assert "cmp" in totals.failures[0], totals.failures[0]


def test_answering_a_share_acknowledgement_before_its_fsync_is_caught() -> None:
    """A share group's ACCEPT or REJECT answered NONE before the share-partition's state is
    on disk: a power loss brings the record back, and it is delivered again (or the broker's
    restored share-partition holds it as Available)."""
    seeds, steps = seeds_from_env()
    with plants.share_ack_before_fsync():
        totals = run_seeds(seeds, steps)
    assert totals.failures, f"the planted bug went unnoticed over {totals.summary()}"
    assert "was answered NONE" in totals.failures[0], totals.failures[0]
