"""Compaction scenarios run against Apache Kafka and shoal (issue 15): results must be equal."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shoal.protocol import ApiKey
from shoal.records import SimpleRecord, build_batch
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
    # Broker-level log.cleaner.* configs (issue 15's leftover).
    "broker_cleaner_configs": broker_cleaner_configs,
}
