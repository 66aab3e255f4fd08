"""The broker's own topics, shown to clients as Kafka shows its internal topics.

Kafka marks a topic internal by its name alone (``Topic.isInternal``): ``__consumer_offsets``,
``__transaction_state`` and ``__share_group_state``. It creates each the first time its
coordinator is used (``__consumer_offsets`` on the first FindCoordinator for a group), and from
then on Metadata lists it with IsInternal=true; before that, Metadata by name answers
UNKNOWN_TOPIC_OR_PARTITION (still with IsInternal=true) and the all-topics list leaves it out.

shoal keeps one of them, ``__consumer_offsets`` (one partition: the group coordinator's log,
see :mod:`shoal.coordinator.offsets_log`). Its log exists from the first start, but it is
registered in the topic store, and so becomes visible, only when Kafka would create it: the
first FindCoordinator for a group, a Metadata request that may auto-create it, or a CreateTopics
of it. The registry's ``_schemas`` is an ordinary topic, in Kafka and here.

The other internal names belong to coordinators shoal does not have yet (transactions, share
groups), and ``__cluster_metadata`` to KRaft: shoal refuses them as user topics, so that no
topic a client creates is ever internal.
"""

from __future__ import annotations

from typing import Final

from shoal.broker.broker_settings import BrokerSettings
from shoal.coordinator.offsets_log import OFFSETS_TOPIC
from shoal.coordinator.txn_log import TXN_STATE_TOPIC

OFFSETS_TOPIC_PARTITIONS: Final = 1
"""shoal's group coordinator keeps every group in one log (Kafka: offsets.topic.num.partitions,
50 by default; the differential Kafka peer runs with 1)."""

KAFKA_INTERNAL_TOPICS: Final = frozenset({OFFSETS_TOPIC, TXN_STATE_TOPIC, "__share_group_state"})
"""Kafka's ``Topic.INTERNAL_TOPICS``: Metadata says IsInternal=true for these names."""

RESERVED_TOPICS: Final = KAFKA_INTERNAL_TOPICS | {"__cluster_metadata"}
"""Names a client may not create a topic under in shoal."""

KEPT_INTERNAL_TOPICS: Final = frozenset({OFFSETS_TOPIC, TXN_STATE_TOPIC})
"""The internal topics shoal has a log for (``__transaction_state``: the transaction
coordinator's, see :mod:`shoal.coordinator.txn_log`; registered on the first FindCoordinator
for a transactional id)."""

_KAFKA_OWNERS: Final = {
    "__share_group_state": "the share group coordinator's state",
    "__cluster_metadata": "KRaft's metadata log",
}


def is_kafka_internal(name: str | None) -> bool:
    return name in KAFKA_INTERNAL_TOPICS


def internal_topic_configs(config: BrokerSettings) -> dict[str, str]:
    """The topic configs Kafka sets on ``__consumer_offsets`` (its DescribeConfigs shows them as
    topic overrides), with shoal's values.

    They describe the topic to clients; they are not applied to the log, whose settings the
    group coordinator owns (``offsets_log_config``). "compact" is what a reader sees: the
    last record of a key wins. shoal gets there by snapshotting the state and deleting what
    came before, rather than by compacting.
    """
    return {
        "cleanup.policy": "compact",
        "compression.type": "producer",
        "segment.bytes": str(config.group.offsets_segment_bytes),
    }


def reserved_name_message(name: str) -> str:
    """Why a client cannot create a topic of this reserved name in shoal."""
    owner = _KAFKA_OWNERS.get(name, "an internal component's data")
    return (
        f"topic name {name} is reserved: Kafka keeps {owner} in it, which this shoal version "
        "does not have"
    )
