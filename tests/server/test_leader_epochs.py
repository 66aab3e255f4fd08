"""Leader epochs across a restart, on the wire: every start is a new epoch, which Metadata,
ListOffsets and the stored batches report; Fetch fences a client still on the old epoch (and
tells it the new one), answers a diverging epoch to one whose last fetched epoch ended before
its offset, and OffsetForLeaderEpoch says where each epoch ended.

Kafka cannot be made to bump an epoch within the shared differential session, so these answers
are checked here against Kafka's documented rules (Partition.readRecords,
LeaderEpochFileCache.endOffsetFor); the fresh-topic answers are compared with Kafka in
tests/differential/test_differential_epochs.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ErrorCode
from tests.differential.scenarios_epochs import (
    FETCH_V12,
    LIST_OFFSETS_V7,
    OFFSET_FOR_LEADER_EPOCH_V4,
)
from tests.server.wire import WireClient, batch_of, fetch_values

TOPIC = "epochs"
NODE = 1
FETCH_V16 = 16
"""The first Fetch version in which Kafka names the current leader (KIP-951)."""


def _broker(path: Path) -> EmbeddedBroker:
    return EmbeddedBroker(str(path), node_id=NODE, auto_create_topics=True)


def _fetch(client: WireClient, offset: int, *, current: int = -1, last: int = -1) -> Any:
    values = fetch_values(TOPIC, offset)
    part = values["topics"][0]["partitions"][0]
    part["current_leader_epoch"], part["last_fetched_epoch"] = current, last
    return client.request(1, FETCH_V12, values).responses[0].partitions[0]


def _fetch_v16(client: WireClient, topic_id: Any, *, current: int) -> Any:
    values = fetch_values(None, 0, topic_id=topic_id)
    values["topics"][0]["partitions"][0]["current_leader_epoch"] = current
    return client.request(1, FETCH_V16, values)


def _end_offset(client: WireClient, epoch: int, current: int = -1) -> tuple[int, int, int]:
    values = {
        "replica_id": -1,
        "topics": [
            {
                "topic": TOPIC,
                "partitions": [
                    {"partition": 0, "current_leader_epoch": current, "leader_epoch": epoch}
                ],
            }
        ],
    }
    (p,) = client.request(23, OFFSET_FOR_LEADER_EPOCH_V4, values).topics[0].partitions
    return int(p.error_code), int(p.leader_epoch), int(p.end_offset)


def _latest(client: WireClient, timestamp: int) -> tuple[int, int]:
    values = {
        "replica_id": -1,
        "isolation_level": 0,
        "topics": [
            {
                "name": TOPIC,
                "partitions": [
                    {"partition_index": 0, "current_leader_epoch": -1, "timestamp": timestamp}
                ],
            }
        ],
    }
    (p,) = client.request(2, LIST_OFFSETS_V7, values).topics[0].partitions
    return int(p.offset), int(p.leader_epoch)


def _epochs(client: WireClient) -> dict[str, int]:
    topics = client.metadata([TOPIC], auto_create=False).topics
    return {str(t.name): int(t.partitions[0].leader_epoch) for t in topics}


def _produce(client: WireClient, count: int) -> None:
    answer = client.produce(TOPIC, 0, batch_of([b"v"] * count), acks=-1)
    assert answer.error_code == 0, answer


def test_a_restart_opens_a_new_epoch_that_every_api_reports(tmp_path: Path) -> None:
    with _broker(tmp_path) as broker, WireClient(broker.bootstrap_servers) as client:
        client.metadata([TOPIC])  # created at epoch 0
        _produce(client, 3)  # offsets 0-2, epoch 0
        assert _epochs(client) == {TOPIC: 0}  # created during this start
    with _broker(tmp_path) as broker, WireClient(broker.bootstrap_servers) as client:
        _produce(client, 2)  # offsets 3-4, epoch 1
        assert _epochs(client) == {TOPIC: 1}

        assert _latest(client, -1) == (5, 1)
        assert _latest(client, -2) == (0, 0)

        assert _end_offset(client, 0) == (0, 0, 3)  # epoch 0 ended where epoch 1 began
        assert _end_offset(client, 1) == (0, 1, 5)  # the current epoch: the log end
        assert _end_offset(client, 2) == (0, -1, -1)
        assert _end_offset(client, 1, current=0)[0] == ErrorCode.FENCED_LEADER_EPOCH
        assert _end_offset(client, 1, current=2)[0] == ErrorCode.UNKNOWN_LEADER_EPOCH

        stale = _fetch(client, 0, current=0)
        assert stale.error_code == ErrorCode.FENCED_LEADER_EPOCH
        # Kafka names the current leader only from v16 (with the node's endpoint); before,
        # the tagged field keeps its default.
        assert (stale.current_leader.leader_id, stale.current_leader.leader_epoch) == (-1, -1)
        topic_id = client.metadata([TOPIC], auto_create=False).topics[0].topic_id
        stale_v16 = _fetch_v16(client, topic_id, current=0)
        (fenced,) = stale_v16.responses[0].partitions
        assert fenced.error_code == ErrorCode.FENCED_LEADER_EPOCH
        assert (fenced.current_leader.leader_id, fenced.current_leader.leader_epoch) == (NODE, 1)
        host, port = broker.bootstrap_servers.rsplit(":", 1)
        assert [(e.node_id, e.host, e.port) for e in stale_v16.node_endpoints] == [
            (NODE, host, int(port))
        ]
        read_v16 = _fetch_v16(client, topic_id, current=1)
        assert read_v16.responses[0].partitions[0].error_code == 0
        assert not read_v16.node_endpoints  # only with a fenced (or not-leader) partition
        assert _fetch(client, 0, current=2).error_code == ErrorCode.UNKNOWN_LEADER_EPOCH

        read = _fetch(client, 0, current=1)
        assert read.error_code == 0 and read.records
        stamped = bytes(read.records)
        first_batch_epoch = int.from_bytes(stamped[12:16], "big", signed=True)
        assert first_batch_epoch == 0  # written before the restart

        # A client that read up to offset 4 in epoch 0 (offsets a crash would since have
        # erased) is told its log diverges at 3, where epoch 0 ended; no records.
        diverged = _fetch(client, 4, current=1, last=0)
        assert diverged.error_code == 0 and not diverged.records
        assert (diverged.diverging_epoch.epoch, diverged.diverging_epoch.end_offset) == (0, 3)
        same = _fetch(client, 3, current=1, last=0)  # epoch 0 did end at 3: no divergence
        assert same.diverging_epoch.epoch == -1 and same.records


def test_a_partition_whose_log_was_lost_comes_back_above_every_epoch_used(
    tmp_path: Path,
) -> None:
    # The metadata still names the partition; its directory is gone. Recreated at the start,
    # it must not report epoch 0 again: a client on epoch 1 would be told UNKNOWN_LEADER_EPOCH
    # instead of FENCED, and a truncation check against epoch 0 would find nothing.
    with _broker(tmp_path) as broker, WireClient(broker.bootstrap_servers) as client:
        client.metadata([TOPIC])
        _produce(client, 1)
    with _broker(tmp_path) as broker, WireClient(broker.bootstrap_servers) as client:
        assert _epochs(client) == {TOPIC: 1}
    shutil.rmtree(tmp_path / f"{TOPIC}-0")
    with _broker(tmp_path) as broker, WireClient(broker.bootstrap_servers) as client:
        assert _epochs(client) == {TOPIC: 2}
        assert _latest(client, -1) == (0, 2)


def test_a_record_found_by_time_in_a_batch_from_before_epochs_has_no_epoch(
    tmp_path: Path,
) -> None:
    # Kafka answers ListOffsets by time (and -3, the max timestamp) with the epoch stamped in
    # the found record's batch, none (-1) when the batch has none (FileRecords.
    # searchForTimestamp). Earliest (-2) answers the first epoch of the history if it begins
    # at or below the log start, else none (UnifiedLog.fetchOffsetByTimestamp); the history
    # holds only stamped epochs, so the first begins after such records: none. Latest
    # answers the current epoch.
    with _broker(tmp_path) as broker, WireClient(broker.bootstrap_servers) as client:
        client.metadata([TOPIC])
        _produce(client, 2)  # offsets 0-1
    segment = tmp_path / f"{TOPIC}-0" / "00000000000000000000.log"
    with open(segment, "r+b") as f:  # as older shoal stored it (outside the CRC)
        f.seek(12)
        f.write(b"\xff\xff\xff\xff")
    with _broker(tmp_path) as broker, WireClient(broker.bootstrap_servers) as client:
        assert _latest(client, 0) == (0, -1)
        assert _latest(client, -3) == (0, -1)
        assert _latest(client, -2) == (0, -1)
        current = _epochs(client)[TOPIC]
        assert _latest(client, -1) == (2, current)
        assert _end_offset(client, current) == (0, current, 2)
