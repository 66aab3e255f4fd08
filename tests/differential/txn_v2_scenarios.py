"""Transactions V2 (KIP-890 part 2) on the wire, run unchanged against Apache Kafka 4.4 and
shoal: the feature both advertise, and a producer's raw requests (InitProducerId, Produce v12
with a transactional id and no AddPartitionsToTxn, EndTxn v5 and its epoch bump, TxnOffsetCommit
v5 with no AddOffsetsToTxn, retries and stale epochs). Each result holds error names and epoch
differences, never the broker-chosen producer id or epoch themselves."""

from __future__ import annotations

import datetime
import time
from typing import Any, Final

import confluent_kafka as ck

from shoal.protocol import ErrorCode
from shoal.records import SimpleRecord, build_batch
from tests.differential.scenarios import TIMEOUT_S, Result, create_topic, unique
from tests.differential.txn_scenarios import read_to_end
from tests.server.wire import NO_LEADER_YET, WireClient

PRODUCE_V2: Final = 12
END_TXN_V2: Final = 5
TXN_OFFSET_COMMIT_V2: Final = 5
RETRIABLE: Final = frozenset(
    {
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        *NO_LEADER_YET,
    }
)
"""Errors Apache Kafka answers while its coordinators load or a new partition gets its
leader: asked again (bounded by TIMEOUT_S), as a client would."""


def _name(code: int) -> str:
    return ErrorCode(code).name


def _until_settled(send: Any) -> Any:
    """``send()`` again while the answer's error is retriable, up to TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    answer = send()
    while answer.error_code in RETRIABLE and time.monotonic() < deadline:
        time.sleep(0.1)
        answer = send()
    return answer


def txn_v2_features(bootstrap: str) -> Result:
    with WireClient(bootstrap) as client:
        out: dict[str, Any] = {}
        for version in (3, 4):
            answer = client.api_versions(version)
            out[f"v{version}_supported"] = [
                (f.name, f.min_version, f.max_version)
                for f in answer.supported_features
                if f.name == "transaction.version"
            ]
            out[f"v{version}_finalized"] = [
                (f.name, f.min_version_level, f.max_version_level)
                for f in answer.finalized_features
                if f.name == "transaction.version"
            ]
            out[f"v{version}_end_txn_max"] = [
                k.max_version for k in answer.api_keys if k.api_key == 26
            ]
    return out


class _Producer:
    """One transactional producer speaking raw requests on one connection."""

    def __init__(self, client: WireClient, txn_id: str) -> None:
        self.client, self.txn_id = client, txn_id
        find = {"key_type": 1, "coordinator_keys": [txn_id]}
        _until_settled(lambda: client.request(10, 4, find).coordinators[0])
        init = _until_settled(lambda: client.request(22, 5, {
            "transactional_id": txn_id, "transaction_timeout": datetime.timedelta(seconds=60),
            "producer_id": -1, "producer_epoch": -1}))  # fmt: skip
        assert init.error_code == 0, _name(init.error_code)
        self.producer_id, self.epoch0 = init.producer_id, init.producer_epoch

    def produce(self, topic: str, epoch: int, sequence: int, value: bytes) -> str:
        batch = build_batch(
            [SimpleRecord(key=None, value=value, timestamp=int(time.time() * 1000))],
            producer_id=self.producer_id,
            producer_epoch=self.epoch0 + epoch,
            base_sequence=sequence,
            transactional=True,
        )
        values = {
            "transactional_id": self.txn_id,
            "acks": -1,
            "timeout": datetime.timedelta(seconds=10),
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}],
        }

        def send() -> Any:
            return self.client.request(0, PRODUCE_V2, values).responses[0].partition_responses[0]

        return _name(_until_settled(send).error_code)

    def end(self, epoch: int, commit: bool, *, version: int = END_TXN_V2) -> list[Any]:
        """[error, the epoch answered (relative to the first), the same producer id?]"""
        answer = _until_settled(lambda: self.client.request(26, version, {
            "transactional_id": self.txn_id, "producer_id": self.producer_id,
            "producer_epoch": self.epoch0 + epoch, "committed": commit}))  # fmt: skip
        if version < END_TXN_V2:
            return [_name(answer.error_code)]
        if answer.error_code != 0:
            return [_name(answer.error_code), answer.producer_epoch, answer.producer_id]
        return [
            "NONE",
            answer.producer_epoch - self.epoch0,
            answer.producer_id == self.producer_id,
        ]


def txn_v2_wire(bootstrap: str) -> Result:
    topic = create_topic(bootstrap)
    with WireClient(bootstrap) as client:
        p = _Producer(client, unique("tv2"))
        out: dict[str, Any] = {"init_epoch": p.epoch0}
        # First transaction: no AddPartitionsToTxn, the Produce adds the partition.
        out["t1_produce"] = p.produce(topic, 0, 0, b"t1-a")
        out["t1_produce_2"] = p.produce(topic, 0, 1, b"t1-b")
        out["t1_commit"] = p.end(0, True)
        # The old epoch: a retry, answered again once the markers are written (Kafka answers
        # EndTxn before it writes them, and CONCURRENT_TRANSACTIONS, retried, until then; every
        # step below that depends on the markers comes after such a settled retry).
        out["t1_commit_retry"] = p.end(0, True)
        out["t1_abort_retry"] = p.end(0, False)  # a retry of what did not happen
        out["t1_commit_again"] = p.end(1, True)  # no transaction open at the new epoch
        out["old_epoch_produce"] = p.produce(topic, 0, 2, b"zombie")
        # Second transaction on the bumped epoch, aborted.
        out["t2_produce"] = p.produce(topic, 1, 0, b"t2-a")
        out["t2_abort"] = p.end(1, False)
        out["t2_abort_retry"] = p.end(1, False)
        out["t2_produce_old_epoch"] = p.produce(topic, 1, 1, b"late")
        # An abort with nothing open still bumps the epoch (V2).
        out["empty_abort"] = p.end(2, False)
        out["t3_produce"] = p.produce(topic, 3, 0, b"t3-a")
        out["t3_v4_commit"] = p.end(3, True, version=4)  # the classic end: no bump
        out["t3_v4_commit_retry"] = p.end(3, True, version=4)
        out["stale_end"] = p.end(1, True)
        out["future_end"] = p.end(9, True)
    out["read_committed"] = read_to_end(bootstrap, topic, "read_committed")
    out["read_uncommitted"] = [v for _, v in read_to_end(bootstrap, topic, "read_uncommitted")]
    return out


def txn_v2_offsets(bootstrap: str) -> Result:
    """TxnOffsetCommit v5 with no AddOffsetsToTxn: the offsets partition joins the transaction
    and the offsets commit with it (and are dropped by an abort)."""
    topic = create_topic(bootstrap)
    group = unique("tv2-group")
    with WireClient(bootstrap) as client:
        find = {"key_type": 0, "coordinator_keys": [group]}
        _until_settled(lambda: client.request(10, 4, find).coordinators[0])
        p = _Producer(client, unique("tv2o"))
        out: dict[str, Any] = {}
        for epoch, (offset, commit) in enumerate([(5, True), (9, False)]):

            def commit_offsets(offset: int = offset, epoch: int = epoch) -> Any:
                answer = client.request(28, TXN_OFFSET_COMMIT_V2, {
                    "transactional_id": p.txn_id, "group_id": group,
                    "producer_id": p.producer_id, "producer_epoch": p.epoch0 + epoch,
                    "generation_id": -1, "member_id": "", "group_instance_id": None,
                    "topics": [{"name": topic, "partitions": [{
                        "partition_index": 0, "committed_offset": offset,
                        "committed_leader_epoch": -1, "committed_metadata": ""}]}]})  # fmt: skip
                return answer.topics[0].partitions[0]

            out[f"commit_{offset}"] = _name(_until_settled(commit_offsets).error_code)
            out[f"end_{offset}"] = p.end(epoch, commit)
            out[f"end_retry_{offset}"] = p.end(epoch, commit)  # settles once markers are in
            out[f"committed_after_{offset}"] = _committed(bootstrap, group, topic)
    return out


def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([ck.TopicPartition(topic, 0)], TIMEOUT_S)
        return int(tp.offset)
    finally:
        consumer.close()


TXN_V2_SCENARIOS = {
    "txn_v2_features": txn_v2_features,
    "txn_v2_wire": txn_v2_wire,
    "txn_v2_offsets": txn_v2_offsets,
}
