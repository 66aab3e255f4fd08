"""Transactions V2 (KIP-890 part 2): Produce v12+ adds its partitions to the transaction.

A V2 producer sends no AddPartitionsToTxn: the broker asks the coordinator to add each
partition a transactional batch goes to before it appends the batch (Kafka's ReplicaManager
does it through AddPartitionsToTxnManager, with an AddPartitionsToTxn v5 that is not
verify-only). The add is logged and fsynced first, so the coordinator never knows less than
the partitions hold: after a crash, a batch in the log belongs to a transaction the
coordinator will end.

The coordinator's errors become the ones Kafka gives a producer for a failed add:
PRODUCER_FENCED is INVALID_PRODUCER_EPOCH (a partition error, it must not look like the
coordinator's fencing), and a retriable coordinator error becomes NOT_ENOUGH_REPLICAS, which
every client retries without refreshing metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from shoal.broker.features import transactions_v2
from shoal.protocol import ErrorCode
from shoal.records import RecordsError, read_header
from shoal.topic_partition import TopicPartition

if TYPE_CHECKING:
    from shoal.broker.broker import Broker


IMPLICIT_ADD_PRODUCE_VERSION: Final = 12
"""Produce v12 is the first whose transactional batches add their partition (KIP-890)."""
IMPLICIT_ADD_TXN_OFFSET_COMMIT_VERSION: Final = 5
"""TxnOffsetCommit v5 is the first that adds the group's offsets partition (KIP-890)."""
CLIENT_TRANSACTION_VERSION_2: Final = 2

_TRANSACTIONAL_BIT: Final = 0x10
"""Bit 4 of a RecordBatch v2's attributes (the low byte at offset 22): transactional."""
_RETRIABLE_AS_NOT_ENOUGH_REPLICAS: Final = frozenset(
    {
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
    }
)


def implicit_adds_apply(broker: Broker, version: int, minimum: int) -> bool:
    return version >= minimum and transactions_v2(broker.config.transaction_version)


async def add_for_produce(
    broker: Broker,
    transactional_id: str,
    batches: Iterable[tuple[TopicPartition, bytes]],
) -> dict[TopicPartition, tuple[ErrorCode, str]]:
    """Add the partition of every transactional batch to its producer's transaction. Returns
    the partitions that could not be added, with the Produce error and its message; the
    others go on to the usual checks (which then find them in the transaction)."""
    by_producer: dict[tuple[int, int], list[TopicPartition]] = {}
    for tp, records in batches:
        if len(records) <= 22 or not records[22] & _TRANSACTIONAL_BIT:
            continue
        try:
            header = read_header(records)
        except RecordsError:
            continue  # append_records refuses it with the reason
        by_producer.setdefault((header.producer_id, header.producer_epoch), []).append(tp)
    refused: dict[TopicPartition, tuple[ErrorCode, str]] = {}
    for (producer_id, epoch), tps in by_producer.items():
        error = await broker.transactions.add_partitions(
            transactional_id, producer_id, epoch, tps, CLIENT_TRANSACTION_VERSION_2
        )
        if error is ErrorCode.NONE:
            continue
        refused |= dict.fromkeys(tps, (produce_error(error), _message(error)))
    return refused


def produce_error(error: ErrorCode) -> ErrorCode:
    """The error a producer gets for a partition the coordinator would not add."""
    if error is ErrorCode.PRODUCER_FENCED:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    if error in _RETRIABLE_AS_NOT_ENOUGH_REPLICAS:
        return ErrorCode.NOT_ENOUGH_REPLICAS
    return error


def _message(error: ErrorCode) -> str:
    return (
        "Unable to add the partition to the transaction (transactions V2). "
        f"Underlying error: {error.name}"
    )
