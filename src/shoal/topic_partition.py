"""The (topic, partition) pair every layer keys by: one definition, below every layer.

Like :mod:`shoal.clock` and :mod:`shoal.invariant`, this module imports nothing of shoal, so the
coordinator, the broker and the framework can all share it without an import between layers.
Storage names its own pair :class:`shoal.storage.LogId` (a partition log's directory, not a key).
"""

from __future__ import annotations

TopicPartition = tuple[str, int]
"""A topic name and a partition index: the key of offsets, assignments and transactions."""
