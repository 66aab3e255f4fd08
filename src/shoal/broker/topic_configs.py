"""The topic config catalogue: names, types, defaults and valid values, as Kafka 4 defines them.

Every topic config of Kafka 4 is known here, so tools that set or describe configs (the admin
clients, ``kafka-configs``, Terraform providers, Kafka Streams) work unchanged. A config either
changes what shoal does (``enforced``) or is accepted, stored and reported without effect: the
replication ones mean nothing on a single node, and broker-side compression and timestamp bounds
are not implemented yet. Each documentation string says which.

Values are kept in canonical form, the one Kafka's DescribeConfigs shows: numbers and choices
trimmed, booleans in lower case, list items trimmed and joined with ``,``. A bad name or value
raises :class:`ConfigError` with a message naming the config and what it accepts; the broker
answers it as INVALID_CONFIG.

How a topic's configs become its storage settings is :func:`log_config_for`; how they are
described to clients is in the DescribeConfigs handler.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Final

from shoal.protocol import ErrorCode
from shoal.storage import FlushPolicy, LogConfig

INT_MIN: Final = -(2**31)
INT_MAX: Final = 2**31 - 1
LONG_MIN: Final = -(2**63)
LONG_MAX: Final = 2**63 - 1
"""Kafka's INT and LONG configs are Java int and long: values outside are refused, as there."""

# Python's int() and float() also take '1_000', non-ASCII digits, 'nan' and 'inf'; Java's parsers,
# whose judgement clients expect, do not.
_WHOLE: Final = re.compile(r"[+-]?[0-9]+")
_DECIMAL: Final = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

FLUSH_MS_NEVER: Final = LONG_MAX
"""flush.ms of Kafka's default: never force an fsync. In shoal it selects FlushPolicy.NONE."""


class ConfigType(IntEnum):
    """DescribeConfigs ``config_type`` (KIP-569)."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigError(ValueError):
    """A config name, value or request Kafka would refuse; ``error_code`` is the answer
    (INVALID_CONFIG unless said otherwise)."""

    def __init__(self, message: str, error_code: int = ErrorCode.INVALID_CONFIG) -> None:
        super().__init__(message)
        self.error_code = error_code


@dataclass(frozen=True, slots=True)
class Check:
    """The type and valid values of one config; turns a raw value into its canonical form."""

    type: ConfigType
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def canonical(self, name: str, raw: str, kind: str = "topic config") -> str:
        text = raw.strip()
        try:
            return self._parse(text)
        except (ValueError, OverflowError):
            raise ConfigError(
                f"invalid value {raw!r} for {kind} {name}: expected {self.accepted}"
            ) from None

    def _parse(self, text: str) -> str:
        match self.type:
            case ConfigType.BOOLEAN:
                if text.lower() not in ("true", "false"):
                    raise ValueError(text)
                return text.lower()
            case ConfigType.INT | ConfigType.LONG:
                if not _WHOLE.fullmatch(text):
                    raise ValueError(text)
                number = int(text)
                self._check_range(number)
                return str(number)
            case ConfigType.DOUBLE:
                if not _DECIMAL.fullmatch(text):
                    raise ValueError(text)
                real = float(text)
                self._check_range(real)
                return str(real)
            case ConfigType.LIST:
                return ",".join(self._list_items(text))
            case _:
                if self.choices and text not in self.choices:
                    raise ValueError(text)
                return text

    def _check_range(self, number: float) -> None:
        if self.low is not None and number < self.low:
            raise ValueError(number)
        if self.high is not None and number > self.high:
            raise ValueError(number)

    def _list_items(self, text: str) -> list[str]:
        items = [item.strip() for item in text.split(",")] if text else []
        if any(not item for item in items):
            raise ValueError(text)
        # An empty list is a value: Kafka 4.4 takes cleanup.policy="" (what SUBTRACT of the last
        # item leaves), a topic that neither deletes nor compacts.
        if self.choices and any(item not in self.choices for item in items):
            raise ValueError(text)
        return list(dict.fromkeys(items))  # a repeated item means nothing more

    @property
    def accepted(self) -> str:
        """What the config accepts, in words, for error messages and documentation."""
        if self.type is ConfigType.BOOLEAN:
            return "true or false"
        if self.type is ConfigType.LIST:
            if self.choices:
                return "a comma-separated list of " + ", ".join(self.choices)
            return "a comma-separated list"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        kind = "a number" if self.type is ConfigType.DOUBLE else "a whole number"
        # A Java long's own limits say nothing a user needs; an int's do (2 GiB sizes).
        low = None if self.low == LONG_MIN else self.low
        high = None if self.high == LONG_MAX else self.high
        if low is not None and high is not None:
            return f"{kind} from {_show(low)} to {_show(high)}"
        if low is not None:
            return f"{kind} of at least {_show(low)}"
        return kind


def _show(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _int(low: int = INT_MIN, high: int = INT_MAX) -> Check:
    return Check(ConfigType.INT, low, high)


def _long(low: int | None = None) -> Check:
    return Check(ConfigType.LONG, LONG_MIN if low is None else low, LONG_MAX)


_BOOL: Final = Check(ConfigType.BOOLEAN)
_THROTTLED_REPLICAS: Final = Check(ConfigType.LIST)


@dataclass(frozen=True, slots=True)
class TopicConfigKey:
    name: str
    check: Check
    default: str
    """Kafka's default; the broker's own setting wins where it has one (see broker_settings)."""
    broker_name: str | None
    """The broker config that supplies the default (Kafka's first synonym), if any."""
    enforced: bool
    doc: str


def _key(
    name: str,
    check: Check,
    default: str,
    broker: str | None,
    doc: str,
    *,
    enforced: bool = False,
) -> TopicConfigKey:
    return TopicConfigKey(name, check, default, broker, enforced, doc)


_NOT_ENFORCED: Final = " Accepted and reported; shoal does not act on it yet."
_SINGLE_NODE: Final = " Accepted and reported; it has no effect on a single node."

# One line per config keeps the table readable; the formatter would give each field its own.
# fmt: off
_CATALOGUE: Final[tuple[TopicConfigKey, ...]] = (
    _key("cleanup.policy", Check(ConfigType.LIST, choices=("delete", "compact")), "delete",
         "log.cleanup.policy",
         "'delete' drops old segments by retention.ms/retention.bytes; 'compact' keeps the "
         "latest record of each key (the log cleaner); a policy without 'delete' refuses "
         "DeleteRecords.", enforced=True),
    _key("compression.gzip.level", Check(ConfigType.INT, -1, 9), "-1",
         "compression.gzip.level", "gzip level when compression.type is gzip."
         + _NOT_ENFORCED),
    _key("compression.lz4.level", _int(1, 17), "9", "compression.lz4.level",
         "lz4 level when compression.type is lz4." + _NOT_ENFORCED),
    _key("compression.type",
         Check(ConfigType.STRING,
               choices=("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")),
         "producer", "compression.type",
         "Codec the broker stores batches in; 'producer' keeps the producer's codec."
         + _NOT_ENFORCED),
    _key("compression.zstd.level", _int(-131072, 22), "3", "compression.zstd.level",
         "zstd level when compression.type is zstd." + _NOT_ENFORCED),
    _key("delete.retention.ms", _long(0), "86400000", "log.cleaner.delete.retention.ms",
         "How long compaction keeps tombstones.", enforced=True),
    _key("file.delete.delay.ms", _long(0), "60000", "log.segment.delete.delay.ms",
         "Delay before a deleted segment's files go; shoal removes them at once."
         + _NOT_ENFORCED),
    _key("flush.messages", _long(1), str(LONG_MAX), "log.flush.interval.messages",
         "Messages between forced fsyncs; use flush.ms to choose shoal's flush policy."
         + _NOT_ENFORCED),
    _key("flush.ms", _long(0), str(FLUSH_MS_NEVER), "log.flush.interval.ms",
         "0: fsync before acknowledging acks=all (shoal's default, group commit); "
         f"{FLUSH_MS_NEVER}: leave fsync to the OS, as Kafka does; any other value: "
         "fsync every that many ms, and a power loss may lose that window.",
         enforced=True),
    _key("follower.replication.throttled.replicas", _THROTTLED_REPLICAS, "", None,
         "Replicas whose follower replication is throttled." + _SINGLE_NODE),
    _key("index.interval.bytes", _int(0), "4096", "log.index.interval.bytes",
         "Bytes of log between sparse offset-index entries.", enforced=True),
    _key("leader.replication.throttled.replicas", _THROTTLED_REPLICAS, "", None,
         "Replicas whose leader replication is throttled." + _SINGLE_NODE),
    _key("local.retention.bytes", _long(-2), "-2", "log.local.retention.bytes",
         "Local retention under tiered storage, which shoal does not have." + _SINGLE_NODE),
    _key("local.retention.ms", _long(-2), "-2", "log.local.retention.ms",
         "Local retention under tiered storage, which shoal does not have." + _SINGLE_NODE),
    _key("max.compaction.lag.ms", _long(1), str(LONG_MAX),
         "log.cleaner.max.compaction.lag.ms",
         "Longest a record stays uncompacted.", enforced=True),
    _key("max.message.bytes", _int(0), "1048588", "message.max.bytes",
         "Largest record batch a producer may append.", enforced=True),
    _key("message.timestamp.after.max.ms", _long(0), "3600000",
         "log.message.timestamp.after.max.ms",
         "How far in the future a CreateTime timestamp may be: a record further ahead of the "
         "broker's clock refuses its batch (INVALID_TIMESTAMP).", enforced=True),
    _key("message.timestamp.before.max.ms", _long(0), str(LONG_MAX),
         "log.message.timestamp.before.max.ms",
         "How far in the past a CreateTime timestamp may be: an older record refuses its "
         "batch (INVALID_TIMESTAMP). A finite value makes the broker decode every record.",
         enforced=True),
    _key("message.timestamp.type",
         Check(ConfigType.STRING, choices=("CreateTime", "LogAppendTime")), "CreateTime",
         "log.message.timestamp.type",
         "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with "
         "the broker's clock.", enforced=True),
    _key("min.cleanable.dirty.ratio", Check(ConfigType.DOUBLE, 0, 1), "0.5",
         "log.cleaner.min.cleanable.ratio",
         "Dirty share of a log before compaction runs.", enforced=True),
    _key("min.compaction.lag.ms", _long(0), "0", "log.cleaner.min.compaction.lag.ms",
         "Shortest a record stays uncompacted.", enforced=True),
    _key("min.insync.replicas", _int(1), "1", "min.insync.replicas",
         "Replicas that must have an acks=all write. Kafka caps it at the replication factor, "
         "always 1 here, so it refuses nothing, in shoal as in Kafka."),
    _key("preallocate", _BOOL, "false", "log.preallocate",
         "Preallocate segment files." + _NOT_ENFORCED),
    _key("remote.log.copy.disable", _BOOL, "false", None,
         "Tiered storage: stop copying to remote storage." + _SINGLE_NODE),
    _key("remote.log.delete.on.disable", _BOOL, "false", None,
         "Tiered storage: delete remote data when disabled." + _SINGLE_NODE),
    _key("remote.storage.enable", _BOOL, "false", None,
         "Tiered storage, which shoal does not have: only false is accepted.",
         enforced=True),
    _key("retention.bytes", _long(), "-1", "log.retention.bytes",
         "Delete the oldest segments while a partition is larger (-1: no limit).",
         enforced=True),
    _key("retention.ms", _long(-1), "604800000", "log.retention.ms",
         "Delete segments whose newest record is older (-1: keep forever).",
         enforced=True),
    _key("segment.bytes", _int(1024 * 1024), "1073741824", "log.segment.bytes",
         "Roll to a new segment before the active one passes this size.", enforced=True),
    _key("segment.index.bytes", _int(4), "10485760", "log.index.size.max.bytes",
         "Size of a segment's offset index; shoal's indexes grow as needed."
         + _NOT_ENFORCED),
    _key("segment.jitter.ms", _long(0), "0", "log.roll.jitter.ms",
         "Random jitter subtracted from segment.ms." + _NOT_ENFORCED),
    _key("segment.ms", _long(1), "604800000", "log.roll.ms",
         "Roll a segment this old, so time retention can delete whole segments.",
         enforced=True),
    _key("unclean.leader.election.enable", _BOOL, "false",
         "unclean.leader.election.enable",
         "Elect an out-of-sync replica as leader." + _SINGLE_NODE),
)
# fmt: on

TOPIC_CONFIGS: Final[Mapping[str, TopicConfigKey]] = {key.name: key for key in _CATALOGUE}


def topic_config_key(name: str) -> TopicConfigKey:
    """The catalogue entry for ``name``; ConfigError naming the closest known one if unknown."""
    key = TOPIC_CONFIGS.get(name)
    if key is None:
        close = difflib.get_close_matches(name, TOPIC_CONFIGS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown topic config {name!r}{hint}")
    return key


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """The canonical form of a topic's whole override set; ConfigError if Kafka would refuse it.

    A None value is refused: CreateTopics and the alter APIs remove a config by leaving it
    out (AlterConfigs) or with DELETE (IncrementalAlterConfigs), never with a null value.
    """
    canonical = {}
    for name, raw in configs.items():
        key = topic_config_key(name)
        if raw is None:
            raise ConfigError(f"topic config {name} has a null value; give a value")
        canonical[name] = key.check.canonical(name, raw)
    _check_together(canonical)
    return canonical


def _check_together(configs: Mapping[str, str]) -> None:
    """The rules that involve more than one config."""
    low = int(configs.get("min.compaction.lag.ms", TOPIC_CONFIGS["min.compaction.lag.ms"].default))
    high = int(configs.get("max.compaction.lag.ms", TOPIC_CONFIGS["max.compaction.lag.ms"].default))
    if low > high:
        raise ConfigError(
            f"min.compaction.lag.ms ({low}) must not be above max.compaction.lag.ms ({high})"
        )
    if configs.get("remote.storage.enable") == "true":
        raise ConfigError(
            "remote.storage.enable=true: shoal has no tiered storage; only false is accepted"
        )


def cleanup_deletes(configs: Mapping[str, str], default_policy: str = "delete") -> bool:
    """Whether the topic's cleanup.policy includes 'delete' (retention and DeleteRecords)."""
    return "delete" in configs.get("cleanup.policy", default_policy).split(",")


def flush_policy_for(flush_ms: int) -> tuple[FlushPolicy, int | None]:
    """The storage flush policy a flush.ms value selects, with its interval when it has one."""
    if flush_ms == 0:
        return FlushPolicy.SYNC, None
    if flush_ms == FLUSH_MS_NEVER:
        return FlushPolicy.NONE, None
    return FlushPolicy.INTERVAL, flush_ms


def flush_ms_of(config: LogConfig) -> int:
    """The flush.ms value that describes a storage flush policy (the inverse of the above)."""
    if config.flush_policy is FlushPolicy.SYNC:
        return 0
    if config.flush_policy is FlushPolicy.NONE:
        return FLUSH_MS_NEVER
    return config.flush_interval_ms


_INT_SETTINGS: Final[Mapping[str, Callable[[int], dict[str, Any]]]] = {
    "segment.bytes": lambda v: {"segment_bytes": v},
    "segment.ms": lambda v: {"segment_ms": v},
    # Kafka indexes every batch at 0; storage wants a positive interval, and 1 does the same.
    "index.interval.bytes": lambda v: {"index_interval_bytes": max(v, 1)},
    "retention.bytes": lambda v: {"retention_bytes": v},
    "retention.ms": lambda v: {"retention_ms": v},
}


def log_config_for(defaults: LogConfig, overrides: Mapping[str, str]) -> LogConfig:
    """The storage settings of a topic: the broker's defaults with the topic's overrides.

    Raises ConfigError for an override Kafka would refuse, so a bad topics.json is refused at
    start with a message rather than half applied.
    """
    configs = validate_topic_configs(overrides)
    changes: dict[str, Any] = {}
    for name, to_setting in _INT_SETTINGS.items():
        if name in configs:
            changes.update(to_setting(int(configs[name])))
    if "flush.ms" in configs:
        policy, interval = flush_policy_for(int(configs["flush.ms"]))
        changes["flush_policy"] = policy
        if interval is not None:
            changes["flush_interval_ms"] = interval
    changes.update(_compaction_settings(configs))
    if not cleanup_deletes(configs):
        # Kafka applies neither time nor size retention to a topic whose policy lacks
        # 'delete': a compacted topic keeps the latest value of every key forever.
        changes.update(retention_ms=-1, retention_bytes=-1)
    return replace(defaults, **changes)


def _compaction_settings(configs: Mapping[str, str]) -> dict[str, Any]:
    """The log cleaner's topic configs as storage settings (issue 15)."""
    changes: dict[str, Any] = {}
    if "cleanup.policy" in configs:
        changes["compact"] = "compact" in configs["cleanup.policy"].split(",")
    for name, setting in (
        ("delete.retention.ms", "delete_retention_ms"),
        ("min.compaction.lag.ms", "min_compaction_lag_ms"),
        ("max.compaction.lag.ms", "max_compaction_lag_ms"),
    ):
        if name in configs:
            changes[setting] = int(configs[name])
    if "min.cleanable.dirty.ratio" in configs:
        changes["min_cleanable_dirty_ratio"] = float(configs["min.cleanable.dirty.ratio"])
    return changes
