"""The states of a classic consumer group and the one table of transitions between them.

::

               first join                    all members joined
    Empty ─────────────────▶ PreparingRebalance ─────────────────▶ CompletingRebalance
      ▲                         │      ▲  ▲                              │        │
      │   no member rejoined    │      │  └── join / leave / expiry ─────┘        │ leader's
      └─────────────────────────┘      │                                          │ SyncGroup
                                       └── join / leave / expiry ── Stable ◀──────┘

    Dead: a deleted group (from any state but Dead itself); nothing leaves it.

The names are Kafka's, as DescribeGroups and ListGroups report them.
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class GroupState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


TRANSITIONS: Final[dict[GroupState, frozenset[GroupState]]] = {
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE, GroupState.DEAD}),
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.COMPLETING_REBALANCE, GroupState.EMPTY, GroupState.DEAD}
    ),
    GroupState.COMPLETING_REBALANCE: frozenset(
        {GroupState.STABLE, GroupState.PREPARING_REBALANCE, GroupState.DEAD}
    ),
    GroupState.STABLE: frozenset({GroupState.PREPARING_REBALANCE, GroupState.DEAD}),
    GroupState.DEAD: frozenset(),
}
"""From each state, the states it may move to. Anything else is a bug in the coordinator."""


class IllegalTransitionError(RuntimeError):
    """A transition that :data:`TRANSITIONS` does not allow: a programmer error."""


def check_transition(group_id: str, current: GroupState, target: GroupState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransitionError(
            f"group {group_id!r}: illegal transition {current.value} -> {target.value}"
        )


def parse_state(name: str) -> GroupState | None:
    """The state Kafka names ``name`` (case-insensitive, as ListGroups filters match), or None."""
    for state in GroupState:
        if state.value.lower() == name.lower():
            return state
    return None
