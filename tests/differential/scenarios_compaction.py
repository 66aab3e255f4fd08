"""Compaction scenarios run against Apache Kafka and shoal (issue 15): results must be equal."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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


SCENARIOS: dict[str, Callable[[str], Result]] = {
    "keyless_records_into_a_compacted_topic": keyless_records_into_a_compacted_topic,
}
