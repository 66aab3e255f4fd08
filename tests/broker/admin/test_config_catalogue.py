"""The topic config catalogue on its own: parsing like Kafka's Java parsers, canonical forms,
the mapping onto storage settings, and the incremental operations. No broker needed."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from shoal.broker.broker_configs import (
    BROKER_CONFIGS,
    ConfigLevels,
    ConfigSource,
    Synonym,
    cleaner_settings_with,
    static_configs,
    validate_dynamic,
)
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.handlers.incremental_alter_configs import AlterOp, apply_operations
from shoal.broker.topic_configs import (
    LONG_MAX,
    TOPIC_CONFIGS,
    ConfigError,
    log_config_for,
    validate_topic_configs,
)
from shoal.protocol import ErrorCode
from shoal.storage import FlushPolicy, LogConfig
from shoal.storage.cleaner_thread import CleanerSettings


@pytest.mark.parametrize("name", sorted(TOPIC_CONFIGS))
def test_every_default_is_valid_and_canonical(name: str) -> None:
    default = TOPIC_CONFIGS[name].default
    assert validate_topic_configs({name: default}) == {name: default}


@pytest.mark.parametrize(
    ("name", "raw", "canonical"),
    [
        ("retention.ms", " 1000 ", "1000"),
        ("retention.ms", "+5", "5"),
        ("retention.ms", "-1", "-1"),
        ("retention.bytes", str(-(2**63)), str(-(2**63))),
        ("segment.bytes", "2147483647", "2147483647"),
        ("preallocate", "TRUE", "true"),
        ("min.cleanable.dirty.ratio", "1e-1", "0.1"),
        ("cleanup.policy", " compact , delete,compact", "compact,delete"),
        ("cleanup.policy", "", ""),  # Kafka 4.4: neither delete nor compact
        ("leader.replication.throttled.replicas", "", ""),
        ("message.timestamp.type", "LogAppendTime", "LogAppendTime"),
    ],
)
def test_values_are_stored_in_canonical_form(name: str, raw: str, canonical: str) -> None:
    assert validate_topic_configs({name: raw}) == {name: canonical}


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        # Python's int() and float() accept these; Java's parsers, and so Kafka, do not.
        ("retention.ms", "1_000"),
        ("retention.ms", "١٢"),
        ("min.cleanable.dirty.ratio", "nan"),
        ("min.cleanable.dirty.ratio", "inf"),
        ("retention.ms", "0x10"),
        ("retention.ms", "-2"),
        ("retention.bytes", str(2**63)),
        ("segment.bytes", "2147483648"),
        ("segment.bytes", str(1024 * 1024 - 1)),
        ("cleanup.policy", "delete,,compact"),
        ("cleanup.policy", "delete,none"),
        ("preallocate", "yes"),
        ("message.timestamp.type", "logappendtime"),
    ],
)
def test_values_kafka_refuses_are_refused(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(name)) as info:
        validate_topic_configs({name: raw})
    assert info.value.error_code == ErrorCode.INVALID_CONFIG


def test_an_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=re.escape("did you mean 'retention.ms'")):
        validate_topic_configs({"retention.msec": "1"})


def test_configs_are_checked_together() -> None:
    with pytest.raises(ConfigError, match=re.escape("min.compaction.lag.ms")):
        validate_topic_configs({"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"})


@pytest.mark.parametrize(
    ("flush_ms", "policy", "interval"),
    [("0", FlushPolicy.SYNC, 1000), (str(LONG_MAX), FlushPolicy.NONE, 1000),
     ("250", FlushPolicy.INTERVAL, 250)],
)  # fmt: skip
def test_flush_ms_selects_the_storage_flush_policy(
    flush_ms: str, policy: FlushPolicy, interval: int
) -> None:
    config = log_config_for(LogConfig(), {"flush.ms": flush_ms})
    assert (config.flush_policy, config.flush_interval_ms) == (policy, interval)


def test_storage_settings_follow_the_overrides() -> None:
    defaults = LogConfig(retention_ms=1234)
    config = log_config_for(
        defaults,
        {"segment.bytes": "2097152", "segment.ms": "60000", "index.interval.bytes": "0",
         "retention.bytes": "5000"},
    )  # fmt: skip
    assert (config.segment_bytes, config.segment_ms, config.retention_bytes) == (
        2097152,
        60000,
        5000,
    )
    assert config.index_interval_bytes == 1  # Kafka's 0 (index every batch) for storage
    assert config.retention_ms == 1234  # not overridden: the broker's default stays
    compacted = log_config_for(defaults, {"cleanup.policy": "compact", "retention.ms": "9"})
    assert (compacted.retention_ms, compacted.retention_bytes) == (-1, -1)


def test_static_configs_are_what_the_operator_set() -> None:
    static = static_configs(BrokerSettings(num_partitions=6, message_max_bytes=5000), "/d")
    assert static["num.partitions"] == "6" and static["message.max.bytes"] == "5000"
    assert static["log.dirs"] == "/d" and static["node.id"] == "1"
    # Values equal to the built-in ones were not chosen by the operator.
    assert "log.segment.bytes" not in static and "log.retention.ms" not in static
    # Every topic config's broker synonym is a known broker config.
    synonyms = {k.broker_name for k in TOPIC_CONFIGS.values() if k.broker_name is not None}
    assert synonyms <= set(BROKER_CONFIGS)


def test_the_cleaners_configs_are_the_settings_it_runs_with() -> None:
    """log.cleaner.* (issue 15, leftovers): what the operator set is STATIC_BROKER_CONFIG, in
    Kafka's spelling of each type; the rest are Kafka's defaults; two change at runtime."""
    cleaner = CleanerSettings(backoff_ms=50, io_max_bytes_per_second=1e7, enable=False)
    static = static_configs(BrokerSettings(cleaner=cleaner), "/d")
    assert static["log.cleaner.backoff.ms"] == "50"
    assert static["log.cleaner.io.max.bytes.per.second"] == "1.0E7"  # Java's Double.toString
    assert static["log.cleaner.enable"] == "false"
    assert "log.cleaner.dedupe.buffer.size" not in static  # the built-in value
    defaults = {n: BROKER_CONFIGS[n].default for n in BROKER_CONFIGS if "cleaner" in n}
    assert defaults["log.cleaner.io.max.bytes.per.second"] == "1.7976931348623157E308"
    assert defaults["log.cleaner.dedupe.buffer.size"] == "134217728"
    assert defaults["log.cleaner.io.buffer.load.factor"] == "0.9"
    assert defaults["log.cleaner.threads"] == "1"
    for name, words in (
        ("log.cleaner.enable", "Cannot update these configs dynamically"),
        ("log.cleaner.threads", "does not apply a runtime change"),
        ("log.cleaner.dedupe.buffer.size", "does not apply a runtime change"),
        ("log.cleaner.backoff.ms", "Invalid value 0"),  # the cleaner needs a positive wait
        ("log.cleaner.io.max.bytes.per.second", "Invalid value 0"),
    ):
        with pytest.raises(ConfigError, match=re.escape(words)):
            validate_dynamic({name: "0"}, cluster=False)
    # The two the cleaner thread reads before each wait and clean change at runtime.
    runtime = {"log.cleaner.backoff.ms": "100", "log.cleaner.io.max.bytes.per.second": "2e6"}
    level = validate_dynamic(runtime, cluster=False)
    applied = cleaner_settings_with(cleaner, levels(per_broker=level))
    assert (applied.backoff_ms, applied.io_max_bytes_per_second) == (100, 2e6)
    assert applied.enable is False  # the rest stays as started
    assert cleaner_settings_with(cleaner, levels()) == cleaner


def levels(
    per_broker: dict[str, str] | None = None,
    cluster: dict[str, str] | None = None,
    static: dict[str, str] | None = None,
) -> ConfigLevels:
    return ConfigLevels(per_broker or {}, cluster or {}, static or {})


DYNAMIC = ConfigSource.DYNAMIC_BROKER_CONFIG
CLUSTER = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
STATIC = ConfigSource.STATIC_BROKER_CONFIG
DEFAULT = ConfigSource.DEFAULT_CONFIG


def test_retention_synonyms_follow_kafka() -> None:
    # Only log.retention.hours (a default) supplies retention.ms: Kafka lists no synonym.
    plain = levels()
    assert plain.topic_synonyms("retention.ms") == []
    assert plain.topic_default("retention.ms") == "604800000"
    assert plain.value("log.retention.ms") is None
    assert plain.broker_synonyms("log.retention.hours") == [
        Synonym("log.retention.hours", "168", DEFAULT)
    ]

    both = levels(per_broker={"log.retention.ms": "7"}, cluster={"log.retention.ms": "8"})
    assert both.topic_synonyms("retention.ms") == [
        Synonym("log.retention.ms", "7", DYNAMIC),
        Synonym("log.retention.ms", "8", CLUSTER),
        Synonym("log.retention.hours", "168", DEFAULT),
    ]
    assert both.topic_default("retention.ms") == "7"
    assert both.dynamic_topic_defaults() == {"retention.ms": "7"}


def test_unit_synonyms_convert_to_the_topic_unit() -> None:
    hours = levels(static={"log.retention.hours": "2"})
    assert hours.topic_default("retention.ms") == str(2 * 3_600_000)


def test_dynamic_levels_refuse_what_shoal_does_not_apply() -> None:
    assert validate_dynamic({"log.retention.ms": " 60000 ", "min.insync.replicas": "1"},
                            cluster=True) == {"log.retention.ms": "60000",
                                              "min.insync.replicas": "1"}  # fmt: skip
    refusals = [
        ({"log.dirs": "/x"}, ErrorCode.INVALID_REQUEST, "Cannot update these configs dynamically"),
        ({"log.retention.hours": "1"}, ErrorCode.INVALID_REQUEST, "dynamically"),
        ({"compression.type": "gzip"}, ErrorCode.INVALID_REQUEST, "does not apply"),
        ({"no.such.thing": "1"}, ErrorCode.INVALID_REQUEST, "Unknown broker configs"),
        ({"log.retention.ms": "soon"}, ErrorCode.INVALID_REQUEST, "Invalid value soon"),
        ({"log.segment.bytes": "5"}, ErrorCode.INVALID_REQUEST, "log.segment.bytes"),
    ]
    for configs, code, words in refusals:
        with pytest.raises(ConfigError, match=re.escape(words)) as info:
            validate_dynamic(configs, cluster=False)
        assert info.value.error_code == code
    # Kafka 4.4 keeps a cluster-level min.insync.replicas and refuses to remove it.
    with pytest.raises(ConfigError, match=re.escape("min.insync.replicas")) as info:
        validate_dynamic({}, cluster=True)
    assert info.value.error_code == ErrorCode.INVALID_CONFIG


@dataclass
class Entry:
    name: str
    config_operation: int
    value: str | None


def test_incremental_operations() -> None:
    current = {"retention.ms": "1000", "cleanup.policy": "delete"}
    result = apply_operations(
        current,
        [
            Entry("retention.ms", AlterOp.DELETE, None),
            Entry("cleanup.policy", AlterOp.APPEND, "compact,delete"),
            Entry("segment.ms", AlterOp.SET, " 60000"),
            Entry("no.such.config", AlterOp.DELETE, None),  # Kafka: deleting it is a no-op
        ],
    )
    assert result == {"cleanup.policy": "delete,compact", "segment.ms": "60000"}
    assert apply_operations(result, [Entry("segment.ms", AlterOp.SET, None)]) == {
        "cleanup.policy": "delete,compact"
    }
    assert apply_operations(result, [Entry("cleanup.policy", AlterOp.SUBTRACT, "delete")]) == {
        "cleanup.policy": "compact",
        "segment.ms": "60000",
    }


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([Entry("retention.ms", AlterOp.APPEND, "5")], ErrorCode.INVALID_CONFIG),
        ([Entry("retention.ms", 9, "5")], ErrorCode.INVALID_REQUEST),
        ([Entry("retention.ms", AlterOp.SET, "1"), Entry("retention.ms", AlterOp.SET, "2")],
         ErrorCode.INVALID_REQUEST),
        ([Entry("cleanup.policy", AlterOp.APPEND, None)], ErrorCode.INVALID_REQUEST),
    ],
)  # fmt: skip
def test_incremental_refusals(entries: list[Entry], code: int) -> None:
    with pytest.raises(ConfigError) as info:
        apply_operations({}, entries)
    assert info.value.error_code == code
