"""Differential scenarios for leader epochs (KIP-320), run unchanged against Apache Kafka and
shoal: the epoch each API reports for a fresh topic (0), the epoch stamped into stored batches,
OffsetForLeaderEpoch's answers, and how Fetch, ListOffsets and OffsetForLeaderEpoch treat a
client's current and last fetched epochs (UNKNOWN_LEADER_EPOCH, FENCED_LEADER_EPOCH, a
diverging epoch, OFFSET_OUT_OF_RANGE).

A restart's epoch bump cannot be shown here (the peer is shared by the session); it is tested
against shoal alone, with a real consumer, in tests/reliability/test_epoch_truncation.py.
Raw requests go through the test wire client, since no client library shows these fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition

from tests.differential.scenarios import TIMEOUT_S, Result, admin
from tests.differential.scenarios_admin import hosted_topic
from tests.server.wire import WireClient, batch_of, fetch_values

RECORDS = 3
FETCH_V12 = 12
"""The first Fetch version with last_fetched_epoch and tagged diverging_epoch, by topic name."""
LIST_OFFSETS_V7 = 7
OFFSET_FOR_LEADER_EPOCH_V4 = 4
METADATA_V12 = 12


def _fetch(client: WireClient, topic: str, offset: int, current: int, last: int) -> Result:
    values = fetch_values(topic, offset)
    part = values["topics"][0]["partitions"][0]
    part["current_leader_epoch"] = current
    part["last_fetched_epoch"] = last
    answer = client.request(1, FETCH_V12, values).responses[0].partitions[0]
    records = bytes(answer.records or b"")
    diverging = answer.diverging_epoch
    leader = answer.current_leader
    return {
        "error": int(answer.error_code),
        "high_watermark": int(answer.high_watermark),
        "log_start": int(answer.log_start_offset),
        "bytes": len(records) > 0,
        # partitionLeaderEpoch of the first batch returned: the epoch it was written in.
        "stamped_epoch": int.from_bytes(records[12:16], "big", signed=True) if records else None,
        "diverging": (int(diverging.epoch), int(diverging.end_offset)),
        "current_leader": (int(leader.leader_id), int(leader.leader_epoch)),
    }


def _list_offsets(client: WireClient, topic: str, timestamp: int, current: int) -> Result:
    values = {
        "replica_id": -1,
        "isolation_level": 0,
        "topics": [
            {
                "name": topic,
                "partitions": [
                    {"partition_index": 0, "current_leader_epoch": current, "timestamp": timestamp}
                ],
            }
        ],
    }
    (answer,) = client.request(2, LIST_OFFSETS_V7, values).topics[0].partitions
    return {
        "error": int(answer.error_code),
        "offset": int(answer.offset),
        "leader_epoch": int(answer.leader_epoch),
    }


def _end_offset(client: WireClient, topic: str, current: int, epoch: int) -> Result:
    values = {
        "replica_id": -1,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {"partition": 0, "current_leader_epoch": current, "leader_epoch": epoch}
                ],
            }
        ],
    }
    (answer,) = client.request(23, OFFSET_FOR_LEADER_EPOCH_V4, values).topics[0].partitions
    return {
        "error": int(answer.error_code),
        "leader_epoch": int(answer.leader_epoch),
        "end_offset": int(answer.end_offset),
    }


def fresh_topic_epochs(bootstrap: str) -> Result:
    topic = hosted_topic(bootstrap)
    with WireClient(bootstrap) as client:
        produced = client.produce_once_led(topic, 0, batch_of([b"a", b"b", b"c"]), wait_s=30)
        assert produced.error_code == 0, produced
        (meta,) = client.metadata([topic], auto_create=False).topics
        return {
            "metadata_epoch": int(meta.partitions[0].leader_epoch),
            "list_offsets": {
                f"{timestamp}/{current}": _list_offsets(client, topic, timestamp, current)
                for timestamp in (-1, -2, -3, 0)
                for current in (-1, 0, 1)
            },
            "offset_for_leader_epoch": {
                f"{current}/{epoch}": _end_offset(client, topic, current, epoch)
                for current in (-1, 0, 1, -5)
                for epoch in (-3, -1, 0, 1)
            },
            "fetch": {
                f"{offset}/{current}/{last}": _fetch(client, topic, offset, current, last)
                for offset in (0, RECORDS, RECORDS + 2)
                for current in (-1, 0, 1, -5)
                for last in (-1, 0, 1)
            },
        }


def after_delete_records(bootstrap: str) -> Result:
    """Epochs and out-of-range answers once DeleteRecords moved the log start to 2."""
    topic = hosted_topic(bootstrap)
    with WireClient(bootstrap) as client:
        produced = client.produce_once_led(topic, 0, batch_of([b"a", b"b", b"c"]), wait_s=30)
        assert produced.error_code == 0, produced
        client_admin = admin(bootstrap)  # kept alive until the future resolves
        (deleted,) = client_admin.delete_records([TopicPartition(topic, 0, 2)]).values()
        low = deleted.result(TIMEOUT_S).low_watermark
        return {
            "low_watermark": low,
            "earliest": _list_offsets(client, topic, -2, -1),
            "fetch_below_start": _fetch(client, topic, 0, -1, -1),
            "fetch_below_start_last_epoch_0": _fetch(client, topic, 0, -1, 0),
            "fetch_at_start": _fetch(client, topic, 2, 0, -1),
            "end_offset_of_epoch_0": _end_offset(client, topic, -1, 0),
        }


SCENARIOS: dict[str, Callable[[str], Any]] = {
    "fresh_topic_epochs": fresh_topic_epochs,
    "after_delete_records": after_delete_records,
}
