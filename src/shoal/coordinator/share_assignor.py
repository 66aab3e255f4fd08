"""Kafka 4.4's ``simple`` share-group assignor (homogeneous subscriptions).

Share members do not own partitions exclusively, so the assignor shares each partition among
``ceil(members / partitions)`` members and gives member ``i`` (of ``M``, in member order)
``ceil(r * (i + 1)) - ceil(r * i)`` partitions, ``r = sharing * partitions / M``: with fewer
members than partitions each partition has one member, with more every partition is shared
and every member has one. As Kafka's ``SimpleHomogeneousAssignmentBuilder`` it is sticky: a
member keeps what it had while that stays within both quotas, and the rest goes round to the
members still below their count. Kafka orders members as its member map does; shoal orders
them by member id, so which member gets which partition may differ, the shape does not.
Members with different subscriptions are assigned per topic the same way among the members
subscribed to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from shoal.topic_partition import TopicPartition

Assignment = dict[str, frozenset[int]]


def simple_assign(
    subscriptions: Mapping[str, Sequence[str]],
    partitions: Mapping[str, int],
    previous: Mapping[str, Assignment],
) -> dict[str, Assignment]:
    """Each member's target assignment; topics that do not exist are left out."""
    members = sorted(subscriptions)
    out: dict[str, dict[str, set[int]]] = {m: {} for m in members}
    by_subscription: dict[tuple[str, ...], list[str]] = {}
    for member in members:
        key = tuple(sorted(t for t in set(subscriptions[member]) if partitions.get(t, 0) > 0))
        by_subscription.setdefault(key, []).append(member)
    for topics, group in by_subscription.items():
        targets = [(t, p) for t in topics for p in range(partitions[t])]
        for member, tps in _assign(group, targets, previous).items():
            for topic, partition in tps:
                out[member].setdefault(topic, set()).add(partition)
    return {m: {t: frozenset(ps) for t, ps in a.items()} for m, a in out.items()}


def _assign(
    members: Sequence[str],
    targets: Sequence[TopicPartition],
    previous: Mapping[str, Assignment],
) -> dict[str, list[TopicPartition]]:
    result: dict[str, list[TopicPartition]] = {m: [] for m in members}
    if not members or not targets:
        return result
    count = len(members)
    sharing = (count + len(targets) - 1) // len(targets)
    ratio = sharing * len(targets) / count
    quota = {m: math.ceil(ratio * (i + 1)) - math.ceil(ratio * i) for i, m in enumerate(members)}
    holders: dict[TopicPartition, int] = dict.fromkeys(targets, 0)
    # Sticky: keep what each member had while both its quota and the partition's sharing allow.
    for member in members:
        for topic, parts in sorted(previous.get(member, {}).items()):
            for partition in sorted(parts):
                tp = (topic, partition)
                if tp not in holders or len(result[member]) >= quota[member]:
                    continue
                if holders[tp] < sharing:
                    holders[tp] += 1
                    result[member].append(tp)
    # The rest round-robin to the members still below their quota, never twice to one member.
    for tp in targets:
        while holders[tp] < sharing:
            candidates = [m for m in members if len(result[m]) < quota[m] and tp not in result[m]]
            if not candidates:
                break
            member = min(candidates, key=lambda m: (len(result[m]) - quota[m], members.index(m)))
            result[member].append(tp)
            holders[tp] += 1
    return result
