"""Broker configs as Kafka 4.4 reports them: the catalogue, the four levels a value can come
from, and how a broker setting becomes every topic's default.

Kafka keeps a broker config at four levels, highest precedence first (KIP-226):

- DYNAMIC_BROKER_CONFIG: set at runtime for this broker (resource name = its node id);
- DYNAMIC_DEFAULT_BROKER_CONFIG: set at runtime cluster-wide (resource name "");
- STATIC_BROKER_CONFIG: given at start (shoal: its config file, SHOAL_* variables, flags);
- DEFAULT_CONFIG: the built-in default.

A topic config without an override takes its value from its broker synonyms, e.g. retention.ms
from log.retention.ms, else log.retention.minutes, else log.retention.hours. DescribeConfigs lists
those candidates, level by level, from the first synonym on: so a topic's retention.ms has no
synonyms at all while only log.retention.hours=168 (a default) supplies it, as in Kafka.

shoal accepts a dynamic change only for the configs it applies at once (``dynamic``); Kafka's
other dynamic configs are refused with a message saying so, rather than stored without effect.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import IntEnum
from typing import Final

from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.topic_configs import (
    LONG_MAX,
    TOPIC_CONFIGS,
    Check,
    ConfigError,
    ConfigType,
    flush_ms_of,
)
from shoal.protocol import ErrorCode
from shoal.storage.cleaner_thread import CleanerSettings

MIN_INSYNC_REPLICAS: Final = "min.insync.replicas"
CLUSTER_SEED: Final[Mapping[str, str]] = {MIN_INSYNC_REPLICAS: "1"}
"""The cluster-wide dynamic configs of a new cluster. Kafka 4.4's controller writes the static
min.insync.replicas as a cluster-level dynamic config when it first starts (its eligible leader
replicas need one), refuses to remove it, and reports it as DYNAMIC_DEFAULT_BROKER_CONFIG on
every broker and topic; shoal reports and guards it the same way."""


class ConfigSource(IntEnum):
    """DescribeConfigs ``config_source`` (KIP-226)."""

    UNKNOWN = 0
    TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    # KIP-848 group configs (issue 16, slice K): a GROUP resource's own override.
    GROUP_CONFIG = 8


@dataclass(frozen=True, slots=True)
class Synonym:
    name: str
    value: str | None
    source: ConfigSource


@dataclass(frozen=True, slots=True)
class BrokerConfigKey:
    name: str
    type: ConfigType
    default: str | None
    """The built-in value (Kafka's, except log.flush.interval.ms); None where Kafka has none."""
    dynamic: bool
    """shoal takes a runtime change of it and applies it without a restart."""
    kafka_dynamic: bool
    """Kafka takes a runtime change of it (its docs' update mode is cluster-wide)."""
    check: Check
    doc: str


@dataclass(frozen=True, slots=True)
class BrokerSynonym:
    """One broker config a topic config falls back to, and its unit in milliseconds' terms."""

    name: str
    factor: int = 1
    """log.retention.hours counts hours: the topic's retention.ms is the value times this."""


_MINUTE_MS: Final = 60_000
_HOUR_MS: Final = 3_600_000

# Topic configs with more than one broker synonym (Kafka's ServerTopicConfigSynonyms); every
# other topic config with a broker synonym has exactly the catalogue's ``broker_name``.
_SEVERAL: Final[Mapping[str, tuple[BrokerSynonym, ...]]] = {
    "retention.ms": (
        BrokerSynonym("log.retention.ms"),
        BrokerSynonym("log.retention.minutes", _MINUTE_MS),
        BrokerSynonym("log.retention.hours", _HOUR_MS),
    ),
    "segment.ms": (BrokerSynonym("log.roll.ms"), BrokerSynonym("log.roll.hours", _HOUR_MS)),
    "segment.jitter.ms": (
        BrokerSynonym("log.roll.jitter.ms"),
        BrokerSynonym("log.roll.jitter.hours", _HOUR_MS),
    ),
    "flush.ms": (
        BrokerSynonym("log.flush.interval.ms"),
        BrokerSynonym("log.flush.scheduler.interval.ms"),
    ),
}

TOPIC_SYNONYMS: Final[Mapping[str, tuple[BrokerSynonym, ...]]] = {
    name: _SEVERAL.get(name, (BrokerSynonym(key.broker_name),))
    for name, key in TOPIC_CONFIGS.items()
    if key.broker_name is not None
}

# Kafka's default of these is null: the value comes from the next synonym (hours).
_NO_DEFAULT: Final = frozenset(
    {"log.retention.ms", "log.retention.minutes", "log.roll.ms", "log.roll.jitter.ms"}
)
_SHOAL_DEFAULTS: Final[Mapping[str, str]] = {
    # shoal fsyncs before answering acks=all (group commit) unless told otherwise; Kafka's
    # null here leaves fsync to the OS.
    "log.flush.interval.ms": "0",
}
_SAME_EFFECT_AS_KAFKA: Final = frozenset({MIN_INSYNC_REPLICAS})
"""Dynamic though no storage setting follows it: Kafka caps min.insync.replicas at a partition's
replication factor (Partition.effectiveMinIsr), 1 on a single node, so any value acts in Kafka
as it does in shoal. The cluster level must also keep one (see CLUSTER_SEED)."""
_UNIT_SYNONYM_DEFAULTS: Final[Mapping[str, str | None]] = {
    "log.retention.minutes": None,
    "log.retention.hours": "168",
    "log.roll.hours": "168",
    "log.roll.jitter.hours": "0",
    "log.flush.scheduler.interval.ms": str(LONG_MAX),
}


def _catalogue() -> Iterator[BrokerConfigKey]:
    yield BrokerConfigKey(
        "node.id", ConfigType.INT, None, False, False, Check(ConfigType.INT), "This broker's id."
    )
    yield BrokerConfigKey(
        "broker.id", ConfigType.INT, "-1", False, False, Check(ConfigType.INT),
        "This broker's id (in KRaft mode the same as node.id).",
    )  # fmt: skip
    yield BrokerConfigKey(
        "advertised.listeners", ConfigType.LIST, None, False, False, Check(ConfigType.LIST),
        "The address clients are told to connect to.",
    )  # fmt: skip
    yield BrokerConfigKey(
        "log.dirs", ConfigType.LIST, None, False, False, Check(ConfigType.LIST),
        "shoal's data directory.",
    )  # fmt: skip
    yield BrokerConfigKey(
        "auto.create.topics.enable", ConfigType.BOOLEAN, "true", False, False,
        Check(ConfigType.BOOLEAN),
        "Create a topic when a producer or Metadata request names a missing one.",
    )  # fmt: skip
    yield BrokerConfigKey(
        "num.partitions", ConfigType.INT, "1", False, False, Check(ConfigType.INT),
        "Partitions of an auto-created topic, and of CreateTopics with -1.",
    )  # fmt: skip
    yield BrokerConfigKey(
        "default.replication.factor", ConfigType.INT, "1", False, False, Check(ConfigType.INT),
        "Always 1: shoal is a single node.",
    )  # fmt: skip
    yield BrokerConfigKey(
        "delete.topic.enable", ConfigType.BOOLEAN, "true", False, False,
        Check(ConfigType.BOOLEAN), "DeleteTopics is allowed.",
    )  # fmt: skip
    yield from _quota_catalogue()
    yield from _cleaner_catalogue()
    for topic_name, synonyms in TOPIC_SYNONYMS.items():
        topic = TOPIC_CONFIGS[topic_name]
        first, *units = synonyms
        default = None if first.name in _NO_DEFAULT else topic.default
        yield BrokerConfigKey(
            first.name,
            topic.check.type,
            _SHOAL_DEFAULTS.get(first.name, default),
            topic.enforced or first.name in _SAME_EFFECT_AS_KAFKA,
            True,
            topic.check,
            topic.doc,
        )
        for unit in units:
            # The hours and minutes forms are read-only in Kafka too: only the first synonym
            # of a topic config can change at runtime.
            yield BrokerConfigKey(
                unit.name,
                topic.check.type,
                _UNIT_SYNONYM_DEFAULTS[unit.name],
                False,
                False,
                Check(topic.check.type),
                f"{first.name} in other units; used when {first.name} is not set.",
            )


def _quota_catalogue() -> Iterator[BrokerConfigKey]:
    """The client quota configs (issue 13, quotas slice)."""
    yield BrokerConfigKey(
        "quota.window.num", ConfigType.INT, "11", False, False, Check(ConfigType.INT),
        "The number of samples to retain in memory for client quotas.",
    )  # fmt: skip
    yield BrokerConfigKey(
        "quota.window.size.seconds", ConfigType.INT, "1", False, False, Check(ConfigType.INT),
        "The time span of each sample for client quotas.",
    )  # fmt: skip
    yield BrokerConfigKey(
        # Dynamic in Kafka; shoal takes it at start only (its acceptor is built with it).
        "max.connection.creation.rate", ConfigType.INT, str(2**31 - 1), False, True,
        Check(ConfigType.INT),
        "The maximum connection creation rate the broker accepts, across all clients.",
    )  # fmt: skip


def _cleaner_catalogue() -> Iterator[BrokerConfigKey]:
    """The log cleaner's own broker configs (issue 15, leftovers); its topic-default synonyms
    (log.cleaner.min.cleanable.ratio, log.cleaner.delete.retention.ms,
    log.cleaner.{min,max}.compaction.lag.ms) come from the topic catalogue above.

    Kafka changes all but log.cleaner.enable at runtime. shoal applies a runtime change of
    log.cleaner.backoff.ms and log.cleaner.io.max.bytes.per.second at once (the cleaner thread
    reads them before each wait and each clean, see :func:`cleaner_settings_with`); the others
    it takes at start only (its offset map is sized once, and it has one thread), so they are
    read-only here and a runtime change is refused with a message saying so."""
    cleaner = CleanerSettings()
    entries = (
        ("log.cleaner.enable", ConfigType.BOOLEAN, "true", False,
         "Run the log cleaner (compaction of topics with cleanup.policy=compact)."),
        ("log.cleaner.threads", ConfigType.INT, "1", True,
         "The number of cleaner threads; shoal always runs one."),
        ("log.cleaner.dedupe.buffer.size", ConfigType.LONG, str(cleaner.dedupe_buffer_bytes),
         True, "Bytes of the cleaner's offset map (24 a key): keys one clean can take in."),
        ("log.cleaner.io.max.bytes.per.second", ConfigType.DOUBLE,
         java_double(cleaner.io_max_bytes_per_second), True,
         "The cleaner's reads and writes together stay under this rate."),
        ("log.cleaner.backoff.ms", ConfigType.LONG, str(cleaner.backoff_ms), True,
         "How long the cleaner sleeps when no log needs cleaning."),
        ("log.cleaner.io.buffer.load.factor", ConfigType.DOUBLE,
         java_double(cleaner.io_buffer_load_factor), True,
         "How full the offset map may get before a clean stops and continues next time."),
        ("log.cleaner.io.buffer.size", ConfigType.INT, str(CLEANER_IO_BUFFER_BYTES), True,
         "Kafka's cleaner I/O buffers; shoal reads whole batches and has no such buffer."),
    )  # fmt: skip
    for name, kind, default, kafka_dynamic, doc in entries:
        runtime = name in CLEANER_RUNTIME_CONFIGS
        # A runtime value must be one the cleaner can run with: a positive wait and rate.
        check = Check(kind, 1) if runtime else Check(kind)
        yield BrokerConfigKey(name, kind, default, runtime, kafka_dynamic, check, doc)


CLEANER_RUNTIME_CONFIGS: Final = ("log.cleaner.backoff.ms", "log.cleaner.io.max.bytes.per.second")
"""The cleaner configs shoal changes at runtime (see _cleaner_catalogue)."""


def cleaner_settings_with(base: CleanerSettings, levels: ConfigLevels) -> CleanerSettings:
    """``base`` (the settings the broker started with) with the dynamic levels' values of the
    configs the cleaner takes at runtime."""
    dynamic = ConfigLevels(levels.per_broker, levels.cluster, {}, {})
    backoff = dynamic.value("log.cleaner.backoff.ms")
    rate = dynamic.value("log.cleaner.io.max.bytes.per.second")
    return replace(
        base,
        backoff_ms=base.backoff_ms if backoff is None else int(backoff),
        io_max_bytes_per_second=base.io_max_bytes_per_second if rate is None else float(rate),
    )


CLEANER_IO_BUFFER_BYTES: Final = 512 * 1024
"""Kafka's log.cleaner.io.buffer.size default (512 KiB), reported as is."""


def java_double(value: float) -> str:
    """``value`` as Java's Double.toString writes it (Kafka's DOUBLE configs are shown so):
    plain between 10^-3 and 10^7, else d.dddE<n>; infinity, shoal's "no limit", is Kafka's
    Double.MAX_VALUE, the default that means the same."""
    if math.isinf(value) or value >= sys.float_info.max:
        value = sys.float_info.max
    if value == 0:
        return "0.0"
    if 1e-3 <= abs(value) < 1e7:
        return repr(float(value))
    sign, digits, exponent = Decimal(repr(float(value))).as_tuple()
    power = len(digits) + int(exponent) - 1  # finite here: never 'n' or 'F'

    significant = "".join(map(str, digits)).rstrip("0") or "0"
    mantissa = significant[0] + "." + (significant[1:] or "0")
    return f"{'-' if sign else ''}{mantissa}E{power}"


BROKER_CONFIGS: Final[Mapping[str, BrokerConfigKey]] = {key.name: key for key in _catalogue()}
DYNAMIC_CONFIGS: Final = tuple(sorted(k.name for k in BROKER_CONFIGS.values() if k.dynamic))


# -- where values come from -------------------------------------------------------------------


def _settings_values(config: BrokerSettings) -> dict[str, str]:
    """The broker configs that shoal's settings decide, by Kafka name."""
    log = config.log
    return {
        "auto.create.topics.enable": str(config.auto_create_topics).lower(),
        "num.partitions": str(config.num_partitions),
        "message.max.bytes": str(config.message_max_bytes),
        "log.flush.interval.ms": str(flush_ms_of(log)),
        "log.index.interval.bytes": str(log.index_interval_bytes),
        "log.retention.bytes": str(log.retention_bytes),
        "log.retention.ms": str(log.retention_ms),
        "log.roll.ms": str(log.segment_ms),
        "log.segment.bytes": str(log.segment_bytes),
        # Client quotas (issue 13, quotas slice).
        "quota.window.num": str(config.quota.quota_window_num),
        "quota.window.size.seconds": str(config.quota.quota_window_size_seconds),
        "max.connection.creation.rate": str(config.quota.max_connection_creation_rate),
        # The log cleaner (issue 15, leftovers).
        "log.cleaner.enable": str(config.cleaner.enable).lower(),
        "log.cleaner.dedupe.buffer.size": str(config.cleaner.dedupe_buffer_bytes),
        "log.cleaner.io.max.bytes.per.second": java_double(config.cleaner.io_max_bytes_per_second),
        "log.cleaner.backoff.ms": str(config.cleaner.backoff_ms),
        "log.cleaner.io.buffer.load.factor": java_double(config.cleaner.io_buffer_load_factor),
    }


def _advertised_listeners(config: BrokerSettings) -> str:
    listeners = config.advertised_listeners or (
        ("PLAINTEXT", config.advertised_host, config.advertised_port),
    )
    return ",".join(
        f"{name}://{f'[{host}]' if ':' in host else host}:{port}" for name, host, port in listeners
    )


def static_configs(config: BrokerSettings, data_dir: str) -> dict[str, str]:
    """The STATIC_BROKER_CONFIG level: what the operator chose at start.

    shoal's settings do not record which values were given explicitly, so a value equal to the
    built-in one counts as not given; the ids and addresses are always the operator's.
    """
    chosen = {
        "node.id": str(config.node_id),
        "broker.id": str(config.node_id),
        "advertised.listeners": _advertised_listeners(config),
        "log.dirs": data_dir,
    }
    builtin = _settings_values(BrokerSettings())
    for name, value in _settings_values(config).items():
        if value != builtin[name]:
            chosen[name] = value
    return chosen


DEFAULT_CONFIGS: Final[Mapping[str, str]] = {
    key.name: key.default for key in BROKER_CONFIGS.values() if key.default is not None
}


@dataclass(frozen=True, slots=True)
class ConfigLevels:
    """The broker config values of each level, highest precedence first."""

    per_broker: Mapping[str, str]
    cluster: Mapping[str, str]
    static: Mapping[str, str]
    default: Mapping[str, str] = field(default_factory=lambda: DEFAULT_CONFIGS)

    def _ordered(self) -> tuple[tuple[Mapping[str, str], ConfigSource], ...]:
        return (
            (self.per_broker, ConfigSource.DYNAMIC_BROKER_CONFIG),
            (self.cluster, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
            (self.static, ConfigSource.STATIC_BROKER_CONFIG),
            (self.default, ConfigSource.DEFAULT_CONFIG),
        )

    def value(self, name: str) -> str | None:
        """The broker config's own value (None when no level has one, as for Kafka's nulls)."""
        for values, _source in self._ordered():
            if name in values:
                return values[name]
        return None

    def synonyms(self, names: Sequence[str], first: str) -> list[Synonym]:
        """Kafka's synonym list: every level, highest first, each in the names' order; then
        everything before the first entry named ``first`` is dropped (so a topic's retention.ms
        never lists log.retention.hours alone)."""
        found = [
            Synonym(name, values[name], source)
            for values, source in self._ordered()
            for name in names
            if name in values
        ]
        for index, synonym in enumerate(found):
            if synonym.name == first:
                return found[index:]
        return []

    def broker_synonyms(self, name: str) -> list[Synonym]:
        """The synonyms DescribeConfigs lists for a broker config."""
        for synonyms in TOPIC_SYNONYMS.values():
            names = [s.name for s in synonyms]
            if name in names:
                return self.synonyms(names, name)
        return self.synonyms([name], name)

    def topic_synonyms(self, topic_name: str) -> list[Synonym]:
        """The broker-level synonyms DescribeConfigs lists for a topic config."""
        synonyms = TOPIC_SYNONYMS.get(topic_name, ())
        if not synonyms:
            return []
        return self.synonyms([s.name for s in synonyms], synonyms[0].name)

    def topic_default(self, topic_name: str) -> str | None:
        """The value a topic without an override has: the first synonym any level sets,
        in the topic config's unit (as Kafka resolves log.retention.ms, then minutes, hours)."""
        for synonym in TOPIC_SYNONYMS.get(topic_name, ()):
            value = self.value(synonym.name)
            if value is not None:
                return _in_topic_unit(value, synonym.factor)
        return None

    def dynamic_topic_defaults(self) -> dict[str, str]:
        """The topic defaults that come from a dynamic level: what overrides shoal's static
        storage settings for every topic without its own value."""
        dynamic = ConfigLevels(self.per_broker, self.cluster, {}, {})
        defaults = {}
        for topic_name in TOPIC_SYNONYMS:
            value = dynamic.topic_default(topic_name)
            if value is not None:
                defaults[topic_name] = value
        return defaults


def _in_topic_unit(value: str, factor: int) -> str:
    return value if factor == 1 else str(int(value) * factor)


# -- dynamic changes --------------------------------------------------------------------------


def validate_dynamic(configs: Mapping[str, str], *, cluster: bool) -> dict[str, str]:
    """The canonical form of a whole dynamic level (cluster-wide or this broker's); ConfigError
    with Kafka's error code (INVALID_REQUEST, as Kafka's broker answers) when refused."""
    _refuse(
        sorted(n for n in configs if n in BROKER_CONFIGS and not BROKER_CONFIGS[n].kafka_dynamic),
        "Cannot update these configs dynamically",
        "set them in shoal's config file, SHOAL_* environment variables or flags and restart",
    )
    _refuse(
        sorted(n for n in configs if n in BROKER_CONFIGS and not BROKER_CONFIGS[n].dynamic),
        "shoal does not apply a runtime change of these configs, so it does not take one",
        "dynamic configs shoal applies: " + ", ".join(DYNAMIC_CONFIGS),
    )
    _refuse(
        sorted(n for n in configs if n not in BROKER_CONFIGS),
        "Unknown broker configs",
        "dynamic configs shoal applies: " + ", ".join(DYNAMIC_CONFIGS),
    )
    canonical = {}
    for name, raw in configs.items():
        check = BROKER_CONFIGS[name].check
        try:
            canonical[name] = check.canonical(name, raw, "broker config")
        except ConfigError:
            raise ConfigError(
                f"Invalid value {raw} for configuration {name}: expected {check.accepted}",
                ErrorCode.INVALID_REQUEST,
            ) from None
    if cluster and MIN_INSYNC_REPLICAS not in canonical:
        raise ConfigError(
            "Cluster-level min.insync.replicas cannot be removed (Kafka 4 keeps it for eligible "
            "leader replicas); set it to 1 for the default behaviour",
            ErrorCode.INVALID_CONFIG,
        )
    return canonical


def _refuse(names: list[str], problem: str, hint: str) -> None:
    if names:
        raise ConfigError(f"{problem}: [{', '.join(names)}]; {hint}", ErrorCode.INVALID_REQUEST)
