"""Settings of the group coordinator, named after the Kafka broker configs they mirror."""

from __future__ import annotations

from dataclasses import dataclass

from shoal.invariant import invariant


@dataclass(frozen=True, slots=True)
class GroupConfig:
    initial_rebalance_delay_ms: int = 3000
    """group.initial.rebalance.delay.ms: how long the first rebalance of an empty group waits
    for more members (extended by the same again while members keep arriving, up to the
    rebalance timeout), so that a fleet starting together gets one rebalance, not N."""
    min_session_timeout_ms: int = 6000
    """group.min.session.timeout.ms: shorter sessions are refused (INVALID_SESSION_TIMEOUT)."""
    max_session_timeout_ms: int = 1_800_000
    """group.max.session.timeout.ms."""
    max_size: int = 10_000
    """group.max.size: members (joined or awaiting their member id) per group. Kafka's default
    is unbounded; every member costs memory and a timer, so shoal puts a limit on it."""
    offset_metadata_max_bytes: int = 4096
    """offset.metadata.max.bytes: longer commit metadata gets OFFSET_METADATA_TOO_LARGE."""
    offsets_snapshot_bytes: int = 8 * 1024 * 1024
    """When the ``__consumer_offsets`` log grows past this (and past twice the last snapshot),
    the current state is written again as a snapshot and everything before it is deleted."""
    offsets_segment_bytes: int = 1024 * 1024
    """segment.bytes of ``__consumer_offsets``: small, so a snapshot frees space soon."""
    # KIP-848 consumer groups (issue 16): the broker-level defaults Kafka 4.4 names so.
    consumer_session_timeout_ms: int = 45_000
    """group.consumer.session.timeout.ms: a consumer-protocol member heard from less often
    than this is fenced."""
    consumer_heartbeat_interval_ms: int = 5_000
    """group.consumer.heartbeat.interval.ms: what heartbeat answers tell members to keep."""
    consumer_assignors: tuple[str, ...] = ("uniform", "range")
    """group.consumer.assignors: the server-side assignors; the first is the default."""
    consumer_migration_policy: str = "bidirectional"
    """group.consumer.migration.policy: which classic <-> consumer group conversions happen
    (see shoal.coordinator.mixed_group for what shoal implements)."""
    consumer_max_size: int = 10_000
    """group.consumer.max.size (Kafka: unbounded; shoal bounds it as ``max_size``)."""

    # KIP-932 share groups (issue 16, slice K): Kafka 4.4's group.share.* broker defaults.
    share_record_lock_duration_ms: int = 30_000
    """group.share.record.lock.duration.ms: how long a record stays acquired by one member."""
    share_delivery_count_limit: int = 5
    """group.share.delivery.count.limit: deliveries after which a record is archived."""
    share_session_timeout_ms: int = 45_000
    """group.share.session.timeout.ms: a share member heard from less often leaves."""
    share_heartbeat_interval_ms: int = 5_000
    """group.share.heartbeat.interval.ms."""
    share_version: int = 1
    """The ``share.version`` feature level: 1 serves share groups (and advertises their APIs),
    0 does not, as a Kafka cluster with share.version=0. Kafka 4.4 finalizes 2 (1 plus
    share-group dead-letter queues, which shoal does not have)."""

    def __post_init__(self) -> None:
        invariant(self.initial_rebalance_delay_ms >= 0, "initial rebalance delay must be >= 0")
        invariant(
            0 < self.min_session_timeout_ms <= self.max_session_timeout_ms,
            "session timeout bounds must be positive and ordered",
        )
        invariant(self.max_size > 0, "group max size must be positive")
        invariant(self.offsets_snapshot_bytes > 0, "offsets snapshot threshold must be positive")
        invariant(
            0 < self.consumer_heartbeat_interval_ms < self.consumer_session_timeout_ms,
            "consumer heartbeat interval must be positive and below the session timeout",
        )
        invariant(bool(self.consumer_assignors), "at least one consumer group assignor")
        invariant(
            self.share_record_lock_duration_ms >= 1000, "share record lock duration >= 1000 ms"
        )
        invariant(2 <= self.share_delivery_count_limit <= 10, "share delivery count limit 2-10")
        invariant(self.share_version in (0, 1), "share.version is 0 or 1")
        invariant(
            0 < self.share_heartbeat_interval_ms < self.share_session_timeout_ms,
            "share heartbeat interval must be positive and below the share session timeout",
        )
