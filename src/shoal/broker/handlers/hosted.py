"""Which topics and partitions this broker hosts, for the admin APIs that name them one by one.

The topic store lists user topics; ``__consumer_offsets`` is not in it (it cannot be created or
deleted by clients), but its log exists from the start and is as much this broker's partition
as any other, so these APIs answer for it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal.coordinator.offsets_log import OFFSETS_TOPIC

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.storage import PartitionLog


def topic_exists(broker: Broker, name: str) -> bool:
    if broker.topics.get(name) is not None:
        return True
    return name == OFFSETS_TOPIC and broker.partition(name, 0) is not None


def hosted_partition(broker: Broker, name: str, index: int) -> PartitionLog | None:
    """The partition's log, or None when the topic or that partition does not exist."""
    topic = broker.topics.get(name)
    if topic is None and name != OFFSETS_TOPIC:
        return None
    if topic is not None and not 0 <= index < topic.partitions:
        return None
    return broker.partition(name, index)
