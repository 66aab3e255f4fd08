"""WriteTxnMarkers (API 27) on the wire, as an operator's tool sends it, against Apache Kafka
and shoal: which producer epochs a partition accepts for a marker (transaction versions 0 and
2), unknown partitions, and that the markers written move no read_committed reader (they end no
open transaction). Codes and counts only, nothing broker-chosen."""

from __future__ import annotations

from typing import Any

import confluent_kafka as ck

from tests.differential.scenarios import TIMEOUT_S, Result, create_topic, unique
from tests.differential.txn_scenarios import read_to_end
from tests.server.wire import WireClient

WRITE_TXN_MARKERS = 27
PRODUCER_ID = 4_000_001
"""Never allocated by either broker in a test run: the partition knows it only from markers."""


def _marker(
    client: WireClient, topic: str, partition: int, epoch: int, *, commit: bool, tv: int | None
) -> int:
    marker: dict[str, Any] = {
        "producer_id": PRODUCER_ID,
        "producer_epoch": epoch,
        "transaction_result": commit,
        "topics": [{"name": topic, "partition_indexes": [partition]}],
        "coordinator_epoch": 0,
    }
    version = 1
    if tv is not None:
        marker["transaction_version"] = tv
        version = 2
    answer = client.request(WRITE_TXN_MARKERS, version, {"markers": [marker]})
    ((only,),) = [t.partitions for m in answer.markers for t in m.topics]
    return int(only.error_code)


def write_txn_markers(bootstrap: str) -> Result:
    topic = create_topic(bootstrap, partitions=1)
    with WireClient(bootstrap) as client:
        codes = {
            "first": _marker(client, topic, 0, 5, commit=False, tv=None),
            "older_epoch": _marker(client, topic, 0, 4, commit=False, tv=None),
            "same_epoch_tv0": _marker(client, topic, 0, 5, commit=True, tv=0),
            "same_epoch_tv2": _marker(client, topic, 0, 5, commit=False, tv=2),
            "newer_epoch_tv2": _marker(client, topic, 0, 6, commit=False, tv=2),
            "unknown_partition": _marker(client, topic, 9, 7, commit=False, tv=None),
            "unknown_topic": _marker(client, unique("gone"), 0, 7, commit=False, tv=None),
        }
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": unique("marks")})
    try:
        ends = consumer.get_watermark_offsets(ck.TopicPartition(topic, 0), TIMEOUT_S)
    finally:
        consumer.close()
    return {**codes, "log_end": ends[1], "read": read_to_end(bootstrap, topic, "read_committed")}


TXN_MARKER_SCENARIOS = {"write_txn_markers": write_txn_markers}
