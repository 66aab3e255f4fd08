"""Server-side assignors of KIP-848 consumer groups: ``uniform`` and ``range``.

An assignor maps every member to its *target* partitions from the members' subscriptions, the
partition counts of the subscribed topics and the previous target. Reconciliation
(:mod:`shoal.coordinator.consumer_group`) then moves each member towards its target without
ever letting two members own a partition at once; the assignor only has to say where every
partition should end up.

- ``uniform`` (Kafka's default): every partition of a subscribed topic goes to one member
  subscribed to it, as evenly as the subscriptions allow, and sticky: a partition stays with
  the member that had it in the previous target unless balance requires moving it. When every
  member subscribes to the same topics the partition counts differ by at most one.
- ``range``: per topic, the members subscribed to it in member-id order get contiguous ranges,
  the first ``partitions % members`` one partition more (co-partitioned topics line up).

Pure functions on plain data; deterministic (ties are broken by member id), which the model
tests rely on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from shoal.topic_partition import TopicPartition

Target = dict[str, dict[str, frozenset[int]]]
"""member id -> topic -> partitions."""

UNIFORM: Final = "uniform"
RANGE: Final = "range"
BALANCE_MOVES_MAX: Final = 1_000_000
"""A bound on the moves of the balancing loop (each move lowers an imbalance, so it ends long
before; the bound turns a bug into a wrong-but-finished answer instead of a hang)."""


def _as_target(owned: Mapping[str, set[TopicPartition]]) -> Target:
    target: Target = {}
    for member_id, tps in owned.items():
        per_topic: dict[str, set[int]] = {}
        for topic, partition in tps:
            per_topic.setdefault(topic, set()).add(partition)
        target[member_id] = {t: frozenset(ps) for t, ps in sorted(per_topic.items())}
    return target


def uniform(
    subscriptions: Mapping[str, frozenset[str]],
    partitions: Mapping[str, int],
    previous: Mapping[str, Mapping[str, frozenset[int]]],
) -> Target:
    """A balanced, sticky assignment (see the module docstring)."""
    members = sorted(subscriptions)
    owned: dict[str, set[TopicPartition]] = {m: set() for m in members}
    owner: dict[TopicPartition, str] = {}
    # Keep what the previous target gave a member that still exists and still subscribes.
    for member_id in members:
        for topic, parts in previous.get(member_id, {}).items():
            if topic not in subscriptions[member_id]:
                continue
            for p in parts:
                if p < partitions.get(topic, 0) and (topic, p) not in owner:
                    owner[(topic, p)] = member_id
                    owned[member_id].add((topic, p))
    eligible: dict[str, list[str]] = {
        topic: [m for m in members if topic in subscriptions[m]] for topic in sorted(partitions)
    }
    # Give every unowned partition to the eligible member with the fewest partitions.
    for topic, count in sorted(partitions.items()):
        candidates = eligible[topic]
        if not candidates:
            continue
        for p in range(count):
            if (topic, p) not in owner:
                chosen = min(candidates, key=lambda m: (len(owned[m]), m))
                owner[(topic, p)] = chosen
                owned[chosen].add((topic, p))
    # Balance: move a partition from a member to an eligible one with at least two fewer.
    for _ in range(BALANCE_MOVES_MAX):
        move = _find_move(owned, eligible)
        if move is None:
            break
        tp, source, dest = move
        owned[source].discard(tp)
        owned[dest].add(tp)
        owner[tp] = dest
    return _as_target(owned)


def _find_move(
    owned: Mapping[str, set[TopicPartition]], eligible: Mapping[str, list[str]]
) -> tuple[TopicPartition, str, str] | None:
    # The most loaded members give first, their highest partitions first, so that what moves
    # is predictable and what stays is the older part of an assignment.
    for source in sorted(owned, key=lambda m: (-len(owned[m]), m)):
        for tp in sorted(owned[source], reverse=True):
            dest = min(eligible[tp[0]], key=lambda m: (len(owned[m]), m))
            if len(owned[source]) - len(owned[dest]) > 1:
                return tp, source, dest
    return None


def range_(
    subscriptions: Mapping[str, frozenset[str]],
    partitions: Mapping[str, int],
    previous: Mapping[str, Mapping[str, frozenset[int]]],
) -> Target:
    """Contiguous ranges per topic, in member-id order (see the module docstring)."""
    del previous  # range is a function of the members and topics alone
    owned: dict[str, set[TopicPartition]] = {m: set() for m in subscriptions}
    for topic, count in sorted(partitions.items()):
        members = sorted(m for m, topics in subscriptions.items() if topic in topics)
        if not members:
            continue
        quota, extra = divmod(count, len(members))
        start = 0
        for i, member_id in enumerate(members):
            size = quota + (1 if i < extra else 0)
            owned[member_id].update((topic, p) for p in range(start, start + size))
            start += size
    return _as_target(owned)


Assignor = Callable[
    [Mapping[str, frozenset[str]], Mapping[str, int], Mapping[str, Mapping[str, frozenset[int]]]],
    Target,
]
ASSIGNORS: Final[Mapping[str, Assignor]] = {UNIFORM: uniform, RANGE: range_}
