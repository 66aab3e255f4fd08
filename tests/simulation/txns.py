"""A simulated transactional producer (InitProducerId with a transactional id,
AddPartitionsToTxn, transactional Produce, EndTxn), the model of what each transaction may
show, and a read_committed client's filter of a Fetch answer.

A transaction's data may be shown to a read_committed reader only once an EndTxn that commits
it was sent: never while it is open, never once it aborted (by EndTxn, by its timeout, or by a
new InitProducerId of the same transactional id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from shoal.protocol import ApiKey, ErrorCode
from shoal.records import SimpleRecord, build_batch, control_type, iter_records, read_header
from shoal.records.control import ControlType
from tests.simulation.consumers import committed_topics
from tests.simulation.node import InFlight
from tests.simulation.producers import Pending

ADD_PARTITIONS = (int(ApiKey.ADD_PARTITIONS_TO_TXN), 3)
ADD_OFFSETS = (int(ApiKey.ADD_OFFSETS_TO_TXN), 3)
TXN_OFFSET_COMMIT = (int(ApiKey.TXN_OFFSET_COMMIT), 3)
END_TXN = (int(ApiKey.END_TXN), 3)
TXN_GROUP: Final = "txg"
"""The group only transactions commit offsets to (consume-transform-produce)."""
TRANSACTION_TIMEOUT_MS: Final = 15_000
"""Short enough that the scheduler's clock advances (up to 31 s, and more) expire some."""

CONTROL_BYTES_MAX: Final = 1 << 10
"""A transaction marker is one record of a few bytes."""
RETRY: Final = frozenset(
    {
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.KAFKA_STORAGE_ERROR,
    }
)


@dataclass
class Txn:
    number: int
    producer_id: int
    epoch: int
    commit_sent: bool = False
    committed: bool = False
    """Its EndTxn(commit) was answered NONE."""
    offsets: dict[int, set[int]] = field(default_factory=dict)
    """Offsets of TXN_GROUP it sent (TxnOffsetCommit), by partition: applied only if it
    commits."""
    acked_offsets: dict[int, set[int]] = field(default_factory=dict)
    """Those of them whose TxnOffsetCommit was answered NONE (the others may be lost)."""


@dataclass
class TxnModel:
    txns: list[Txn] = field(default_factory=list)
    batches: dict[tuple[int, int, int, int], Txn] = field(default_factory=dict)
    """(pid, epoch, partition, base sequence) of every transactional batch sent -> its txn."""

    ending: list[Txn] = field(default_factory=list)
    """Transactions with offsets, in the order their EndTxn(commit) was first sent."""

    def begin(self, producer_id: int, epoch: int) -> Txn:
        txn = Txn(len(self.txns) + 1, producer_id, epoch)
        self.txns.append(txn)
        return txn

    def commit_sent(self, txn: Txn) -> None:
        if not txn.commit_sent and txn.offsets:
            self.ending.append(txn)
        txn.commit_sent = True

    def allowed_offsets(self, partition: int) -> set[int | None]:
        """What TXN_GROUP's committed offset of ``partition`` may be. A transaction whose
        commit was acknowledged, with an acknowledged TxnOffsetCommit for the partition,
        decides it (one of its values); one whose commit or TxnOffsetCommit is unknown may
        have. A transaction whose commit was never sent never does."""
        allowed: set[int | None] = {None}
        for txn in self.ending:
            values = txn.offsets.get(partition)
            if not values:
                continue
            if txn.committed and txn.acked_offsets.get(partition):
                allowed = set(values)
            else:
                allowed |= values
        return allowed


@dataclass
class TxnProducer:
    name: str
    transactional_id: str
    producer_id: int = -1
    epoch: int = -1
    state: str = "init"  # init | ready | open | ending
    txn: Txn | None = None
    added: set[int] = field(default_factory=set)
    offsets_added: bool = False
    commit: bool = True
    next_sequence: dict[int, int] = field(default_factory=dict)
    pending: Pending | None = None
    flight: InFlight | None = None
    values: int = 0

    def fenced(self) -> None:
        """Start over with InitProducerId (which aborts an open transaction)."""
        self.state = "init"
        self.txn = None
        self.pending = None
        self.added.clear()
        self.offsets_added = False

    def init_values(self) -> dict[str, Any]:
        return {
            "transactional_id": self.transactional_id,
            "transaction_timeout": TRANSACTION_TIMEOUT_MS,
        }

    def on_init(self, answer: Any) -> str:
        error = ErrorCode(answer.error_code)
        if error is ErrorCode.NONE:
            self.producer_id = int(answer.producer_id)
            self.epoch = int(answer.producer_epoch)
            self.next_sequence.clear()
            self.state = "ready"
            return f"pid {self.producer_id} epoch {self.epoch}"
        return error.name

    def add_values(self, topic: str, partition: int) -> dict[str, Any]:
        return {
            "v3_and_below_transactional_id": self.transactional_id,
            "v3_and_below_producer_id": self.producer_id,
            "v3_and_below_producer_epoch": self.epoch,
            "v3_and_below_topics": [{"name": topic, "partitions": [partition]}],
        }

    def on_add(self, answer: Any, partition: int) -> str:
        error = ErrorCode(
            answer.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
        )
        if error is ErrorCode.NONE:
            self.added.add(partition)
        elif error not in RETRY:
            self.fenced()
        return error.name

    def new_batch(self, partition: int, now_ms: int, count: int) -> Pending:
        records = []
        for _ in range(count):
            self.values += 1
            records.append(SimpleRecord(value=f"{self.name}-{self.values}".encode()))
        batch = build_batch(
            records,
            base_timestamp=now_ms,
            producer_id=self.producer_id,
            producer_epoch=self.epoch,
            base_sequence=self.next_sequence.get(partition, 0),
            transactional=True,
        )
        return Pending(partition, batch, -1)

    def on_produced(self, error: ErrorCode, pending: Pending) -> None:
        header = read_header(pending.batch)
        if error is ErrorCode.NONE:
            self.next_sequence[pending.partition] = header.base_sequence + header.record_count
            self.pending = None
        elif error not in RETRY:
            # Fenced or refused: the client starts over; the open transaction is aborted by
            # the next InitProducerId (or by its timeout).
            self.fenced()

    def end_values(self) -> dict[str, Any]:
        return {
            "transactional_id": self.transactional_id,
            "producer_id": self.producer_id,
            "producer_epoch": self.epoch,
            "committed": self.commit,
        }

    def on_end(self, answer: Any) -> str:
        error = ErrorCode(answer.error_code)
        if error is ErrorCode.NONE:
            if self.txn is not None and self.commit:
                self.txn.committed = True
            self.state = "ready"
            self.txn = None
            self.added.clear()
            self.offsets_added = False
        elif error in RETRY:
            pass  # state stays "ending": the same EndTxn is sent again
        else:
            self.fenced()
        return error.name


def add_offsets_values(producer: TxnProducer) -> dict[str, Any]:
    return {
        "transactional_id": producer.transactional_id,
        "producer_id": producer.producer_id,
        "producer_epoch": producer.epoch,
        "group_id": TXN_GROUP,
    }


def txn_offset_commit_values(
    producer: TxnProducer, topic: str, offsets: dict[int, int]
) -> dict[str, Any]:
    return {
        "transactional_id": producer.transactional_id,
        "group_id": TXN_GROUP,
        "producer_id": producer.producer_id,
        "producer_epoch": producer.epoch,
        "generation_id": -1,
        "member_id": "",
        "group_instance_id": None,
        "topics": committed_topics(topic, offsets),
    }


def read_committed_view(records: bytes, aborted: list[tuple[int, int]]) -> list[Any]:
    """The headers of the data batches a read_committed Kafka consumer delivers from one
    partition's Fetch answer, given its aborted transactions ``(producer id, first offset)``
    (the Java consumer's filter: a producer's batches are skipped from the first offset of its
    aborted transaction up to that transaction's ABORT marker)."""
    pending = sorted(aborted, key=lambda a: a[1])
    skipping: set[int] = set()
    delivered = []
    data = memoryview(records)
    position = 0
    while position < len(data):
        header = read_header(data[position:])
        batch = data[position : position + header.size]
        position += header.size
        last = header.base_offset + header.last_offset_delta
        while pending and pending[0][1] <= last:
            skipping.add(pending.pop(0)[0])
        if header.is_control:
            marker = next(iter_records(batch, max_uncompressed_bytes=CONTROL_BYTES_MAX))
            if control_type(marker) == ControlType.ABORT:
                skipping.discard(header.producer_id)
            continue
        if header.is_transactional and header.producer_id in skipping:
            continue
        delivered.append(header)
    return delivered
