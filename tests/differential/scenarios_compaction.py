"""Compaction and record-level refusal scenarios run against Apache Kafka and shoal (issue 15):
results must be equal."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from shoal.protocol import ApiKey
from shoal.records import SimpleRecord, TimestampType, build_batch
from tests.differential.scenarios import create_topic
from tests.server.wire import WireClient

Result = dict[str, Any]
READY_WAIT_S = 30.0


def keyless_records_into_a_compacted_topic(bootstrap: str) -> Result:
    """A batch with keyless records sent to a compacted topic: INVALID_RECORD, each keyless
    record named in record_errors (KIP-467), nothing of the batch written; then a keyed batch
    is accepted at offset 0."""
    out: Result = {}
    for policy in ("compact", "compact,delete"):
        topic = create_topic(bootstrap, **{"cleanup.policy": policy})
        now_ms = int(time.time() * 1000)
        keys = [b"a", None, b"c", None, None, None]
        batch = build_batch([SimpleRecord(key=k, value=b"v", timestamp=now_ms) for k in keys])
        with WireClient(bootstrap) as wire:
            refused = wire.produce_once_led(topic, 0, batch, wait_s=READY_WAIT_S)
            keyed = wire.produce(topic, 0, build_batch([SimpleRecord(b"k", b"v")]))

        def scrub(text: str | None, name: str = topic) -> str | None:
            return None if text is None else text.replace(name, "TOPIC")

        out[policy] = {
            "error_code": refused.error_code,
            "error_message": scrub(refused.error_message),
            "record_errors": [
                (e.batch_index, scrub(e.batch_index_error_message)) for e in refused.record_errors
            ],
            "base_offset": refused.base_offset,
            "then_keyed": (keyed.error_code, keyed.base_offset),
        }
    return out


HOUR_MS = 3_600_000
_BOUNDS = re.compile(r"within \[(-?\d+), (-?\d+)\]")
_TIMESTAMPS = re.compile(r"(Timestamp |timestamp=)(-?\d+)")


def _scrub_bounds(text: str | None) -> tuple[str | None, int | None]:
    """A refusal message with the broker's clock taken out: the bounds' width stays."""
    if text is None:
        return None, None
    found = _BOUNDS.search(text)
    if found is None:
        return _TIMESTAMPS.sub(r"\1T", text), None
    width = int(found.group(2)) - int(found.group(1))
    return _TIMESTAMPS.sub(r"\1T", _BOUNDS.sub("within [LOW, HIGH]", text)), width


def _named(text: str | None, topic: str) -> str | None:
    return None if text is None else text.replace(topic, "TOPIC")


def record_timestamps(bootstrap: str) -> Result:
    """CreateTime timestamps outside message.timestamp.before/after.max.ms: INVALID_TIMESTAMP,
    each such record named in record_errors with its offset and the bounds, nothing written; a
    record without a key on a compacted topic beside one too far ahead makes the error
    INVALID_TIMESTAMP; LogAppendTime topics check no CreateTime and refuse a producer's
    LogAppendTime batch; raising the bound lets the same batch in."""
    now = int(time.time() * 1000)
    ahead = now + 2 * HOUR_MS
    cases: dict[str, tuple[dict[str, str], list[SimpleRecord], TimestampType]] = {
        "ahead_default": (
            {},
            [SimpleRecord(b"k", b"v", timestamp=t) for t in (now, ahead, now - 5, ahead + 1)],
            TimestampType.CREATE_TIME,
        ),
        "behind_bound_in_the_middle": (
            {"message.timestamp.before.max.ms": "60000"},
            [SimpleRecord(b"k", b"v", timestamp=t) for t in (now, now - 600_000, now)],
            TimestampType.CREATE_TIME,
        ),
        "ahead_with_raised_bound": (
            {"message.timestamp.after.max.ms": str(3 * HOUR_MS)},
            [SimpleRecord(b"k", b"v", timestamp=ahead)],
            TimestampType.CREATE_TIME,
        ),
        "no_timestamps_zero_bounds": (
            {"message.timestamp.before.max.ms": "0", "message.timestamp.after.max.ms": "0"},
            [SimpleRecord(b"k", b"v"), SimpleRecord(b"k", b"v")],
            TimestampType.CREATE_TIME,
        ),
        "compacted_keyless_and_ahead": (
            {"cleanup.policy": "compact"},
            [
                SimpleRecord(None, b"v", timestamp=now),
                SimpleRecord(b"k", b"v", timestamp=ahead),
                SimpleRecord(None, b"v", timestamp=ahead),
            ],
            TimestampType.CREATE_TIME,
        ),
        "append_time_topic_ahead": (
            {"message.timestamp.type": "LogAppendTime"},
            [SimpleRecord(b"k", b"v", timestamp=now + 5 * HOUR_MS)],
            TimestampType.CREATE_TIME,
        ),
        "append_time_topic_producer_stamped": (
            {"message.timestamp.type": "LogAppendTime"},
            [
                SimpleRecord(b"key", b"value", timestamp=now),
                SimpleRecord(b"k", None, timestamp=now),
            ],
            TimestampType.LOG_APPEND_TIME,
        ),
        "create_time_topic_producer_stamped_ahead": (
            {},
            [SimpleRecord(b"k", b"v", timestamp=ahead)],
            TimestampType.LOG_APPEND_TIME,
        ),
    }
    out: Result = {}
    for case, (config, records, timestamp_type) in cases.items():
        topic = create_topic(bootstrap, **config)
        batch = build_batch(records, timestamp_type=timestamp_type)
        with WireClient(bootstrap) as wire:
            answer = wire.produce_once_led(topic, 0, batch, wait_s=READY_WAIT_S)
            then = wire.produce(topic, 0, build_batch([SimpleRecord(b"k", b"v")]))
        message, width = _scrub_bounds(answer.error_message)
        out[case] = {
            "error_code": answer.error_code,
            "error_message": _named(message, topic),
            "bounds_width": width,
            "record_errors": [
                (e.batch_index, *_scrub_bounds(_named(e.batch_index_error_message, topic)))
                for e in answer.record_errors
            ],
            "base_offset": answer.base_offset,
            "then": (then.error_code, then.base_offset),
        }
    return out


CLEANER_BROKER_CONFIGS = [
    "log.cleaner.enable",
    "log.cleaner.threads",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.backoff.ms",
    "log.cleaner.io.buffer.load.factor",
    "log.cleaner.io.buffer.size",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms",
]
"""The log cleaner's broker configs (issue 15): both brokers run with Kafka's defaults."""


RUNTIME_IN_KAFKA_ONLY = frozenset(
    {
        "log.cleaner.threads",
        "log.cleaner.dedupe.buffer.size",
        "log.cleaner.io.buffer.load.factor",
        "log.cleaner.io.buffer.size",
    }
)
"""The cleaner-thread configs Kafka changes at runtime and shoal takes at start only: their
read-only flags differ (an accepted difference, see accepted_differences.toml)."""


def broker_cleaner_configs(bootstrap: str) -> Result:
    """DescribeConfigs v4 of this broker (node 1) for the log cleaner's configs, named and in
    the full listing: value, source, type and synonyms of each, and read-only flags."""
    out: Result = {}
    with WireClient(bootstrap) as wire:
        for keys in (CLEANER_BROKER_CONFIGS, None):
            request = {
                "resources": [
                    {"resource_type": 4, "resource_name": "1", "configuration_keys": keys}
                ],
                "include_synonyms": True,
                "include_documentation": False,
            }
            (result,) = wire.request(ApiKey.DESCRIBE_CONFIGS, 4, request).results
            configs = [c for c in result.configs if c.name.startswith("log.cleaner.")]
            view = "named" if keys else "listed"
            out[view] = (
                result.error_code,
                {
                    c.name: (
                        c.value,
                        c.config_source,
                        c.config_type,
                        [(s.name, s.value, s.source) for s in c.synonyms],
                    )
                    for c in configs
                },
            )
            out[f"{view}_read_only"] = {
                c.name: c.read_only for c in configs if c.name not in RUNTIME_IN_KAFKA_ONLY
            }
            out[f"{view}_read_only_runtime"] = {
                c.name: c.read_only for c in configs if c.name in RUNTIME_IN_KAFKA_ONLY
            }
    return out


SCENARIOS: dict[str, Callable[[str], Result]] = {
    "keyless_records_into_a_compacted_topic": keyless_records_into_a_compacted_topic,
    # The other record-level refusals Kafka names per record (KIP-467): timestamps.
    "record_timestamps": record_timestamps,
    # Broker-level log.cleaner.* configs (issue 15's leftover).
    "broker_cleaner_configs": broker_cleaner_configs,
}
