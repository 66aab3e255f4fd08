"""Per-group configs (the GROUP config resource of DescribeConfigs/IncrementalAlterConfigs):
what a KIP-848 group may override of the broker's ``group.consumer.*`` defaults.

Kafka 4.4 names them without the ``group.`` prefix and bounds each by the broker's min/max
settings (``consumer.session.timeout.ms`` within ``group.consumer.min/max.session.timeout.ms``,
45 s to 60 s by default; ``consumer.heartbeat.interval.ms`` within 5 s to 15 s). shoal serves
the two consumer-group configs it honours; where shoal's broker default lies outside Kafka's
bounds (tests run with short sessions) the bound widens to include it. The share-group and
streams configs Kafka 4.4 also lists belong to the features that honour them: share groups
append theirs below (``share.auto.offset.reset``, lock duration, delivery count limit, session
and heartbeat), within Kafka 4.4's default bounds, and ``share.isolation.level``
(read_committed share fetches stop at the last stable offset and archive aborted records).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.share_offset_reset import parse_offset_reset

KAFKA_MIN_SESSION_TIMEOUT_MS: Final = 45_000
KAFKA_MAX_SESSION_TIMEOUT_MS: Final = 60_000
KAFKA_MIN_HEARTBEAT_INTERVAL_MS: Final = 5_000
KAFKA_MAX_HEARTBEAT_INTERVAL_MS: Final = 15_000


class GroupConfigError(ValueError):
    """A group config Kafka would refuse (INVALID_CONFIG), with Kafka's message."""


@dataclass(frozen=True, slots=True)
class GroupConfigKey:
    name: str
    broker_name: str
    """The broker config it overrides (its synonym in DescribeConfigs); empty when none."""
    default: Callable[[GroupConfig], int | str]
    bounds: Callable[[GroupConfig], tuple[int, int]]
    doc: str
    text: Callable[[str], str] | None = None
    """For a STRING config: its canonical form, raising ValueError with Kafka's message."""


def _session_bounds(config: GroupConfig) -> tuple[int, int]:
    default = config.consumer_session_timeout_ms
    return min(KAFKA_MIN_SESSION_TIMEOUT_MS, default), max(KAFKA_MAX_SESSION_TIMEOUT_MS, default)


def _heartbeat_bounds(config: GroupConfig) -> tuple[int, int]:
    default = config.consumer_heartbeat_interval_ms
    return (
        min(KAFKA_MIN_HEARTBEAT_INTERVAL_MS, default),
        max(KAFKA_MAX_HEARTBEAT_INTERVAL_MS, default),
    )


SESSION_TIMEOUT: Final = "consumer.session.timeout.ms"
HEARTBEAT_INTERVAL: Final = "consumer.heartbeat.interval.ms"
GROUP_CONFIG_KEYS: Final[dict[str, GroupConfigKey]] = {
    SESSION_TIMEOUT: GroupConfigKey(
        SESSION_TIMEOUT,
        "group.consumer.session.timeout.ms",
        lambda c: c.consumer_session_timeout_ms,
        _session_bounds,
        "The timeout to detect client failures when using the consumer group protocol.",
    ),
    HEARTBEAT_INTERVAL: GroupConfigKey(
        HEARTBEAT_INTERVAL,
        "group.consumer.heartbeat.interval.ms",
        lambda c: c.consumer_heartbeat_interval_ms,
        _heartbeat_bounds,
        "The heartbeat interval given to the members of a consumer group.",
    ),
}


def validate_group_configs(configs: Mapping[str, str], base: GroupConfig) -> dict[str, str]:
    """The overrides in canonical form; raises GroupConfigError as Kafka words it."""
    out: dict[str, str] = {}
    for name, value in sorted(configs.items()):
        key = GROUP_CONFIG_KEYS.get(name)
        if key is None:
            raise GroupConfigError(f"Unknown group config name: {name}")
        if key.text is not None:
            try:
                out[name] = key.text(value)
            except ValueError as exc:
                raise GroupConfigError(str(exc)) from None
            continue
        try:
            number = int(value.strip())
        except ValueError:
            raise GroupConfigError(
                f"Invalid value {value} for configuration {name}: Not a number of type INT"
            ) from None
        low, high = key.bounds(base)
        if not low <= number <= high:
            raise GroupConfigError(f"{name} must be in the range {low} to {high} inclusive.")
        out[name] = str(number)
    return out


def effective(configs: Mapping[str, str], base: GroupConfig) -> dict[str, int]:
    """Every numeric group config's value for a group with these (valid) overrides."""
    return {
        name: int(configs[name]) if name in configs else int(key.default(base))
        for name, key in GROUP_CONFIG_KEYS.items()
        if key.text is None
    }


def effective_text(configs: Mapping[str, str], base: GroupConfig, name: str) -> str:
    """A STRING group config's value for a group with these (valid) overrides."""
    return configs[name] if name in configs else str(GROUP_CONFIG_KEYS[name].default(base))


# -- KIP-932 share groups (issue 16, slice K): the share.* group configs shoal honours --------

KAFKA_MIN_SHARE_LOCK_MS: Final = 15_000
KAFKA_MAX_SHARE_LOCK_MS: Final = 60_000
KAFKA_MIN_DELIVERY_COUNT: Final = 2
KAFKA_MAX_DELIVERY_COUNT: Final = 10
KAFKA_MIN_SHARE_SESSION_MS: Final = 45_000
KAFKA_MAX_SHARE_SESSION_MS: Final = 60_000
KAFKA_MIN_SHARE_HEARTBEAT_MS: Final = 5_000
KAFKA_MAX_SHARE_HEARTBEAT_MS: Final = 15_000
SHARE_AUTO_OFFSET_RESET: Final = "share.auto.offset.reset"
SHARE_RECORD_LOCK_DURATION: Final = "share.record.lock.duration.ms"
SHARE_DELIVERY_COUNT_LIMIT: Final = "share.delivery.count.limit"
SHARE_SESSION_TIMEOUT: Final = "share.session.timeout.ms"
SHARE_HEARTBEAT_INTERVAL: Final = "share.heartbeat.interval.ms"
SHARE_ISOLATION_LEVEL: Final = "share.isolation.level"
READ_COMMITTED: Final = "read_committed"
READ_UNCOMMITTED: Final = "read_uncommitted"


def _widened(low: int, high: int, default: int) -> tuple[int, int]:
    return min(low, default), max(high, default)


def _offset_reset_text(value: str) -> str:
    reset = parse_offset_reset(value)  # raises OffsetResetError, a ValueError
    return value.strip() if reset.strategy == "by_duration" else reset.strategy


GROUP_CONFIG_KEYS[SHARE_AUTO_OFFSET_RESET] = GroupConfigKey(
    SHARE_AUTO_OFFSET_RESET,
    "",
    lambda c: "latest",
    lambda c: (0, 0),
    "The strategy to use to initialize the share-partition start offset.",
    _offset_reset_text,
)
GROUP_CONFIG_KEYS[SHARE_RECORD_LOCK_DURATION] = GroupConfigKey(
    SHARE_RECORD_LOCK_DURATION,
    "group.share.record.lock.duration.ms",
    lambda c: c.share_record_lock_duration_ms,
    lambda c: _widened(
        KAFKA_MIN_SHARE_LOCK_MS, KAFKA_MAX_SHARE_LOCK_MS, c.share_record_lock_duration_ms
    ),
    "The record acquisition lock duration in milliseconds for share groups.",
)
GROUP_CONFIG_KEYS[SHARE_DELIVERY_COUNT_LIMIT] = GroupConfigKey(
    SHARE_DELIVERY_COUNT_LIMIT,
    "group.share.delivery.count.limit",
    lambda c: c.share_delivery_count_limit,
    lambda c: _widened(
        KAFKA_MIN_DELIVERY_COUNT, KAFKA_MAX_DELIVERY_COUNT, c.share_delivery_count_limit
    ),
    "The maximum number of delivery attempts for a record delivered to a share group.",
)
GROUP_CONFIG_KEYS[SHARE_SESSION_TIMEOUT] = GroupConfigKey(
    SHARE_SESSION_TIMEOUT,
    "group.share.session.timeout.ms",
    lambda c: c.share_session_timeout_ms,
    lambda c: _widened(
        KAFKA_MIN_SHARE_SESSION_MS, KAFKA_MAX_SHARE_SESSION_MS, c.share_session_timeout_ms
    ),
    "The timeout to detect client failures when using the share group protocol.",
)
GROUP_CONFIG_KEYS[SHARE_HEARTBEAT_INTERVAL] = GroupConfigKey(
    SHARE_HEARTBEAT_INTERVAL,
    "group.share.heartbeat.interval.ms",
    lambda c: c.share_heartbeat_interval_ms,
    lambda c: _widened(
        KAFKA_MIN_SHARE_HEARTBEAT_MS, KAFKA_MAX_SHARE_HEARTBEAT_MS, c.share_heartbeat_interval_ms
    ),
    "The heartbeat interval given to the members of a share group.",
)


# -- share.isolation.level (issue 16, slice Q) -------------------------------------------------


def _isolation_text(value: str) -> str:
    if value not in (READ_COMMITTED, READ_UNCOMMITTED):
        # Kafka's ValidString message (GroupConfig defines the config with in(...)).
        raise ValueError(
            f"Invalid value {value} for configuration {SHARE_ISOLATION_LEVEL}: String must be "
            f"one of: {READ_COMMITTED}, {READ_UNCOMMITTED}"
        )
    return value


GROUP_CONFIG_KEYS[SHARE_ISOLATION_LEVEL] = GroupConfigKey(
    SHARE_ISOLATION_LEVEL,
    "",
    lambda c: READ_UNCOMMITTED,
    lambda c: (0, 0),
    "Controls how to read records written transactionally. If set to read_committed, the "
    "share group will only deliver transactional records which have been committed. If set "
    "to read_uncommitted, the share group will return all messages, even transactional "
    "messages which have been aborted. Non-transactional records will be returned "
    "unconditionally in either mode.",
    _isolation_text,
)
