"""WriteTxnMarkers (API 27) on the wire, as an operator's tool sends it, against Apache Kafka
and shoal: which producer epochs a partition accepts for a marker (transaction versions 0 and
2), unknown partitions, and that the markers written move no read_committed reader (they end no
open transaction). Codes and counts only, nothing broker-chosen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import confluent_kafka as ck

from shoal.protocol import ErrorCode
from tests.differential.scenarios import (
    TIMEOUT_S,
    Result,
    create_topic,
    partition_count,
    unique,
)
from tests.differential.test_java_txn_v2 import state_partition
from tests.differential.txn_scenarios import read_to_end
from tests.differential.txn_v2_scenarios import _committed, _Producer, _until_settled
from tests.server.wire import WireClient

WRITE_TXN_MARKERS = 27
OFFSETS_TOPIC = "__consumer_offsets"
DESCRIBE_PRODUCERS = 61
WAIT_S_MAX = 30.0
"""How long a scenario waits for a partition's leader or a coordinator's marker."""
PRODUCER_ID = 4_000_001
"""Never allocated by either broker in a test run: the partition knows it only from markers."""


def _marker(
    client: WireClient,
    topic: str,
    partition: int,
    epoch: int,
    *,
    commit: bool,
    tv: int | None,
    coordinator_epoch: int = 0,
) -> int:
    marker: dict[str, Any] = {
        "producer_id": PRODUCER_ID,
        "producer_epoch": epoch,
        "transaction_result": commit,
        "topics": [{"name": topic, "partition_indexes": [partition]}],
        "coordinator_epoch": coordinator_epoch,
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
        _wait(client, topic, lambda partition: partition.error_code == 0)
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


def transactional_producer(bootstrap: str, txn_id: str) -> ck.Producer:
    producer = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    producer.init_transactions(TIMEOUT_S)
    return producer


def _describe_partition(client: WireClient, topic: str, partition: int = 0) -> Any:
    answer = client.request(
        DESCRIBE_PRODUCERS, 0, {"topics": [{"name": topic, "partition_indexes": [partition]}]}
    )
    ((partition,),) = [t.partitions for t in answer.topics]
    return partition


def _wait(client: WireClient, topic: str, ready: Callable[[Any], bool]) -> None:
    """Ask DescribeProducers of partition 0 again (bounded) until ``ready`` holds for its
    answer: Apache Kafka has no leader for a moment after CreateTopics returns, and writes
    its own coordinator's markers after EndTxn is answered."""
    deadline = time.monotonic() + WAIT_S_MAX
    while not ready(_describe_partition(client, topic)):
        assert time.monotonic() < deadline, f"{topic}-0 not ready within {WAIT_S_MAX}s"
        time.sleep(0.05)


def _producer_states(client: WireClient, topic: str) -> list[tuple[bool, int, int, bool]]:
    """DescribeProducers of partition 0: per producer (the markers' producer?, epoch,
    coordinator epoch, whether a last timestamp is known); the ids and timestamps themselves
    are the brokers' choice."""
    partition = _describe_partition(client, topic)
    return sorted(
        (
            s.producer_id == PRODUCER_ID,
            int(s.producer_epoch),
            int(s.coordinator_epoch),
            s.last_timestamp > 0,
        )
        for s in partition.active_producers
    )


def marker_coordinator_epochs(bootstrap: str) -> Result:
    """A marker whose coordinator epoch is older than the last one the partition saw for the
    producer is from a zombie coordinator: TRANSACTION_COORDINATOR_FENCED, nothing written.
    DescribeProducers reports the coordinator epoch of the producer's last marker."""
    topic = create_topic(bootstrap, partitions=1)
    out: dict[str, Any] = {}
    with WireClient(bootstrap) as client:
        _wait(client, topic, lambda partition: partition.error_code == 0)
        for step, coordinator_epoch in (("first", 3), ("older", 2), ("same", 3), ("newer", 7)):
            out[step] = _marker(
                client, topic, 0, 5, commit=False, tv=None, coordinator_epoch=coordinator_epoch
            )
            out[f"{step}_state"] = _producer_states(client, topic)
        # The producer epoch is checked first: an older one is INVALID_PRODUCER_EPOCH even
        # from an older coordinator.
        out["older_both"] = _marker(client, topic, 0, 4, commit=False, tv=None, coordinator_epoch=1)
        # The broker's own coordinator's marker: its epoch as the partition reports it.
        producer = transactional_producer(bootstrap, unique("marks-txn"))
        producer.begin_transaction()
        producer.produce(topic, value=b"committed", partition=0)
        producer.commit_transaction(TIMEOUT_S)
        _wait(
            client,
            topic,
            lambda partition: all(
                s.current_txn_start_offset == -1 for s in partition.active_producers
            ),
        )
        out["own_coordinator_state"] = _producer_states(client, topic)
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": unique("marks")})
    try:
        ends = consumer.get_watermark_offsets(ck.TopicPartition(topic, 0), TIMEOUT_S)
    finally:
        consumer.close()
    return {**out, "log_end": ends[1]}


NEWER_COORDINATOR_EPOCH = 1_000
"""Above any coordinator epoch either broker reaches in a test run (the leader epoch of its
``__transaction_state`` partition, which rises only when its leader changes)."""
DESCRIBE_TRANSACTIONS = 65


def own_marker_fenced(bootstrap: str) -> Result:
    """The coordinator's own marker is checked as an operator's is: a partition that took an
    ABORT for the producer from a newer coordinator (``kafka-transactions abort`` with a higher
    coordinator epoch) refuses the coordinator's COMMIT (TRANSACTION_COORDINATOR_FENCED),
    writes nothing, and the coordinator gives the transaction up in PrepareCommit; the other
    partition of the transaction takes its COMMIT marker."""
    topic, txn_id = create_topic(bootstrap, partitions=2), unique("fenced-own")
    out: dict[str, Any] = {}
    with WireClient(bootstrap) as client:
        _wait(client, topic, lambda partition: partition.error_code == 0)
        producer = transactional_producer(bootstrap, txn_id)
        producer.begin_transaction()
        producer.produce(topic, value=b"a", partition=0)
        producer.produce(topic, value=b"b", partition=1)
        producer.flush(TIMEOUT_S)
        (state,) = _describe_partition(client, topic, 0).active_producers
        marker = {
            "producer_id": int(state.producer_id),
            "producer_epoch": int(state.producer_epoch),
            "transaction_result": False,
            "topics": [{"name": topic, "partition_indexes": [0]}],
            "coordinator_epoch": NEWER_COORDINATOR_EPOCH,
        }
        answer = client.request(WRITE_TXN_MARKERS, 1, {"markers": [marker]})
        out["operator_abort"] = int(answer.markers[0].topics[0].partitions[0].error_code)
        producer.commit_transaction(TIMEOUT_S)  # answered once the commit is decided
        # The coordinator's markers to both partitions go out together: once partition 1
        # took its COMMIT, partition 0's was refused.
        deadline = time.monotonic() + WAIT_S_MAX
        while any(
            s.current_txn_start_offset != -1
            for s in _describe_partition(client, topic, 1).active_producers
        ):
            assert time.monotonic() < deadline, f"{topic}-1: no COMMIT within {WAIT_S_MAX}s"
            time.sleep(0.05)
        out["coordinator_epoch_0"] = [
            int(s.coordinator_epoch) for s in _describe_partition(client, topic, 0).active_producers
        ]
        described = client.request(DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": [txn_id]})
        out["state"] = str(described.transaction_states[0].transaction_state)
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": unique("marks")})
    try:
        out["log_ends"] = [
            consumer.get_watermark_offsets(ck.TopicPartition(topic, p), TIMEOUT_S)[1]
            for p in (0, 1)
        ]
    finally:
        consumer.close()
    out["read"] = [read_to_end(bootstrap, topic, "read_committed", p) for p in (0, 1)]
    return out


def _group_partition(client: WireClient, bootstrap: str, group: str) -> int:
    """The group's ``__consumer_offsets`` partition, once its coordinator is ready."""
    find = {"key_type": 0, "coordinator_keys": [group]}
    _until_settled(lambda: client.request(10, 4, find).coordinators[0])
    return state_partition(group, partition_count(bootstrap, OFFSETS_TOPIC))


def _offsets_marker(
    client: WireClient, partition: int, producer_id: int, epoch: int, coordinator_epoch: int
) -> str:
    marker = {
        "producer_id": producer_id,
        "producer_epoch": epoch,
        "transaction_result": False,
        "topics": [{"name": OFFSETS_TOPIC, "partition_indexes": [partition]}],
        "coordinator_epoch": coordinator_epoch,
    }
    answer = client.request(WRITE_TXN_MARKERS, 1, {"markers": [marker]})
    return ErrorCode(int(answer.markers[0].topics[0].partitions[0].error_code)).name


def _txn_commit_offset(
    client: WireClient, producer: _Producer, epoch: int, group: str, topic: str, offset: int
) -> str:
    """AddOffsetsToTxn, then TxnOffsetCommit of ``offset`` for ``topic``-0: its error's name."""
    ids = {"transactional_id": producer.txn_id, "producer_id": producer.producer_id,
           "producer_epoch": epoch}  # fmt: skip
    added = _until_settled(
        lambda: client.request(25, 3, {**ids, "group_id": group})  # AddOffsetsToTxn
    )
    assert added.error_code == 0, ErrorCode(added.error_code).name

    def send() -> Any:
        return client.request(28, 3, {  # TxnOffsetCommit
            **ids, "group_id": group, "generation_id": -1, "member_id": "",
            "group_instance_id": None, "topics": [{"name": topic, "partitions": [{
                "partition_index": 0, "committed_offset": offset,
                "committed_leader_epoch": -1, "committed_metadata": ""}]}]},
        ).topics[0].partitions[0]  # fmt: skip

    return ErrorCode(_until_settled(send).error_code).name


def _offsets_producer(client: WireClient, partition: int, producer_id: int) -> Any:
    """The producer's state in DescribeProducers of ``__consumer_offsets``-``partition``."""
    (state,) = [
        s
        for s in _describe_partition(client, OFFSETS_TOPIC, partition).active_producers
        if s.producer_id == producer_id
    ]
    return state


def _offsets_ends(client: WireClient, partition: int) -> tuple[int, int]:
    """(last stable offset, high watermark) of ``__consumer_offsets``-``partition``: ListOffsets
    of the latest offset, read_committed then read_uncommitted."""
    ends = []
    for isolation_level in (1, 0):
        values = {"replica_id": -1, "isolation_level": isolation_level, "topics": [{
            "name": OFFSETS_TOPIC, "partitions": [{"partition_index": partition,
            "current_leader_epoch": -1, "timestamp": -1}]}]}  # fmt: skip
        (answer,) = client.request(2, 7, values).topics[0].partitions
        assert answer.error_code == 0, ErrorCode(answer.error_code).name
        ends.append(int(answer.offset))
    return ends[0], ends[1]


def offsets_open_transaction(bootstrap: str) -> Result:
    """A transaction's TxnOffsetCommit record is a transactional batch with base sequence 0 on
    ``__consumer_offsets``, as Kafka's group coordinator writes it: DescribeProducers shows
    the producer with last sequence 0 and the transaction's start offset while it is open,
    and the partition's last stable offset stays at that start; once the COMMIT marker is
    written, neither holds. Offsets are compared relative to the partition's end before the
    commit (the two brokers' partitions hold different histories)."""
    topic, group = create_topic(bootstrap), unique("offsets-open")
    out: dict[str, Any] = {}
    with WireClient(bootstrap) as client:
        partition = _group_partition(client, bootstrap, group)
        producer = _Producer(client, unique("offsets-open"))
        _, end_before = _offsets_ends(client, partition)
        out["commit"] = _txn_commit_offset(client, producer, producer.epoch0, group, topic, 7)
        state = _offsets_producer(client, partition, producer.producer_id)
        start = int(state.current_txn_start_offset)
        stable, _ = _offsets_ends(client, partition)
        out["open"] = {
            "epoch": int(state.producer_epoch) - producer.epoch0,
            "last_sequence": int(state.last_sequence),
            "txn_start_at_or_after_the_end_before": start >= end_before,
            "last_stable_at_txn_start": stable == start,
        }
        out["end"] = producer.end(0, True, version=3)
        deadline = time.monotonic() + WAIT_S_MAX
        # Kafka writes its coordinator's markers after EndTxn is answered.
        while (
            _offsets_producer(client, partition, producer.producer_id).current_txn_start_offset >= 0
        ):
            assert time.monotonic() < deadline, "the COMMIT marker was never written"
            time.sleep(0.05)
        stable, high_watermark = _offsets_ends(client, partition)
        out["last_stable_is_the_end_after_commit"] = stable == high_watermark
        out["committed"] = _committed(bootstrap, group, topic)
    return out


def offsets_marker_epochs(bootstrap: str) -> Result:
    """Markers on the group's ``__consumer_offsets`` partition are checked as on any
    partition: an operator's ABORT from an older producer epoch than the transaction's offset
    commit is refused and drops nothing (the offsets commit with the transaction); a current
    one drops the pending offsets (the coordinator's own ABORT then ends the transaction); one
    from an older coordinator epoch than the producer's last marker there is fenced (shown
    with a producer id neither broker allocates, so no transaction is left stuck)."""
    topic, group = create_topic(bootstrap), unique("offsets-marks")
    out: dict[str, Any] = {}
    with WireClient(bootstrap) as client:
        partition = _group_partition(client, bootstrap, group)
        txn_id = unique("offsets-marks")
        _Producer(client, txn_id)  # the first instance, fenced by the second
        producer = _Producer(client, txn_id)
        epoch = producer.epoch0

        def commit_offset(offset: int) -> str:
            return _txn_commit_offset(client, producer, epoch, group, topic, offset)

        pid = producer.producer_id
        out["commit_5"] = commit_offset(5)
        out["stale_abort"] = _offsets_marker(client, partition, pid, epoch - 1, 0)
        out["end_commit"] = producer.end(0, True, version=3)
        out["committed_after_commit"] = _committed(bootstrap, group, topic)
        out["commit_9"] = commit_offset(9)
        out["current_abort"] = _offsets_marker(client, partition, pid, epoch, 0)
        out["committed_after_abort"] = _committed(bootstrap, group, topic)
        out["end_abort"] = producer.end(0, False, version=3)
        out["coordinator_epoch_3"] = _offsets_marker(client, partition, PRODUCER_ID, 5, 3)
        out["coordinator_epoch_2"] = _offsets_marker(client, partition, PRODUCER_ID, 5, 2)
        out["older_producer_epoch"] = _offsets_marker(client, partition, PRODUCER_ID, 4, 3)
    return out


TXN_MARKER_SCENARIOS = {
    "write_txn_markers": write_txn_markers,
    "marker_coordinator_epochs": marker_coordinator_epochs,
    "own_marker_fenced": own_marker_fenced,
    "offsets_marker_epochs": offsets_marker_epochs,
    "offsets_open_transaction": offsets_open_transaction,
}
