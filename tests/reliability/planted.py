"""Bugs planted in a broker on purpose, to show the checker catches what it claims to.

A checker that never fails proves nothing: each plant breaks one promise the way a real bug
would, and a test runs the workload against that broker and expects the checker to object.
Planted in the broker's child process only (tests/support/broker_child.py), never in pytest's.
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.coordinator import producer_state


def _forget_idempotence() -> None:
    """Retried batches are appended again instead of answered with their first offset."""
    original = producer_state.PartitionProducers.check

    def check(
        self: producer_state.PartitionProducers,
        producer_id: int,
        epoch: int,
        first_sequence: int,
        last_sequence: int,
    ) -> producer_state.Verdict:
        verdict = original(self, producer_id, epoch, first_sequence, last_sequence)
        if isinstance(verdict, producer_state.Duplicate):
            return producer_state.APPEND
        return verdict

    producer_state.PartitionProducers.check = check  # type: ignore[method-assign]


PLANTS: dict[str, Callable[[], None]] = {"forget-idempotence": _forget_idempotence}


def plant(name: str) -> None:
    PLANTS[name]()
