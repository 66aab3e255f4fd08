"""Coordinators: state machines the broker consults before it touches a log.

Pure logic with an injected clock; what must survive a restart is persisted through
:mod:`shoal.storage`. Nothing here opens a socket or runs an event loop.

- :mod:`shoal.coordinator.producer_state`: idempotent-producer checks of one partition.
- :mod:`shoal.coordinator.producer_snapshot`: that state as bytes, for the partition's snapshot.
- :mod:`shoal.coordinator.producers`: the state of every partition, rebuilt from snapshot + log.
- :mod:`shoal.coordinator.producer_ids`: unique producer ids for InitProducerId.
- :mod:`shoal.coordinator.group_state`: consumer group states and their transition table.
- :mod:`shoal.coordinator.group`: one classic consumer group (join, sync, heartbeat, leave).
- :mod:`shoal.coordinator.group_coordinator`: every group and its committed offsets.
- :mod:`shoal.coordinator.offsets_log`: the ``__consumer_offsets`` log, replay and snapshots.
"""
