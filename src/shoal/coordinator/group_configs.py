"""Per-group configs (the GROUP config resource of DescribeConfigs/IncrementalAlterConfigs):
what a KIP-848 group may override of the broker's ``group.consumer.*`` defaults.

Kafka 4.4 names them without the ``group.`` prefix and bounds each by the broker's min/max
settings (``consumer.session.timeout.ms`` within ``group.consumer.min/max.session.timeout.ms``,
45 s to 60 s by default; ``consumer.heartbeat.interval.ms`` within 5 s to 15 s). shoal serves
the two consumer-group configs it honours; where shoal's broker default lies outside Kafka's
bounds (tests run with short sessions) the bound widens to include it. The share-group and
streams configs Kafka 4.4 also lists belong to the features that honour them: a slice that
builds one appends its keys to :data:`GROUP_CONFIG_KEYS` (the hook for share groups).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from shoal.coordinator.group_config import GroupConfig

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
    """The broker config it overrides (its synonym in DescribeConfigs)."""
    default: Callable[[GroupConfig], int]
    bounds: Callable[[GroupConfig], tuple[int, int]]
    doc: str


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
    """Every group config's value for a group with these (valid) overrides."""
    return {
        name: int(configs[name]) if name in configs else key.default(base)
        for name, key in GROUP_CONFIG_KEYS.items()
    }
