"""The topic config catalogue on its own: parsing like Kafka's Java parsers, canonical forms,
the mapping onto storage settings, and the incremental operations. No broker needed."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from shoal.broker.config import BrokerConfig
from shoal.broker.configs import (
    LONG_MAX,
    TOPIC_CONFIGS,
    ConfigError,
    broker_settings,
    log_config_for,
    validate_topic_configs,
)
from shoal.broker.handlers.incremental_alter_configs import AlterOp, apply_operations
from shoal.protocol import ErrorCode
from shoal.storage import FlushPolicy, LogConfig


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
        ("cleanup.policy", ""),
        ("cleanup.policy", "delete,,compact"),
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


def test_broker_settings_know_what_the_operator_set() -> None:
    settings = broker_settings(BrokerConfig(num_partitions=6, message_max_bytes=5000), "/d")
    assert (settings["num.partitions"].value, settings["num.partitions"].is_set) == ("6", True)
    assert settings["message.max.bytes"].is_set
    assert not settings["log.segment.bytes"].is_set
    assert settings["log.dirs"].value == "/d" and settings["log.dirs"].is_set
    # Every topic config's broker synonym is reported too.
    synonyms = {k.broker_name for k in TOPIC_CONFIGS.values() if k.broker_name is not None}
    assert synonyms <= set(settings)


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
