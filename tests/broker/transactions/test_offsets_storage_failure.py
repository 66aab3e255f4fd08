"""A storage failure under ``__consumer_offsets`` (the producer state of the partition could
not be loaded, which the broker's append answers as a refusal with KAFKA_STORAGE_ERROR) is not
an epoch refusal: TxnOffsetCommit answers the retriable COORDINATOR_NOT_AVAILABLE, as before
the transaction's batches carried their producer (a Java producer treats an unexpected code as
fatal), and WriteTxnMarkers answers KAFKA_STORAGE_ERROR for the partition, as Kafka's does (the
coordinator retries it); the offsets stay pending either way. The failure is planted in the
broker's producer-state check, the step that raises it for real."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.handlers import HANDLERS
from shoal.broker.handlers.write_txn_markers import _write
from shoal.buffers import Buffer
from shoal.coordinator.offsets_log import OFFSETS_TOPIC, CommittedOffset
from shoal.coordinator.producer_state import Verdict
from shoal.protocol import ErrorCode
from shoal.records.header import BatchHeader
from shoal.storage import LogManager, PartitionLog, StorageError

TP = ("t", 0)
PID, EPOCH = 7, 0


def test_a_storage_failure_is_answered_as_one_not_as_an_epoch_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = LogManager.open(str(tmp_path))

    async def scenario() -> tuple[ErrorCode, ErrorCode, ErrorCode, bool]:
        broker = Broker(BrokerSettings(), logs, handlers=HANDLERS)
        broker.ensure_internal_topic(OFFSETS_TOPIC)  # as a client's first use registers it
        check = broker.producers.check
        failing = True

        def planted(
            topic: str, partition: int, plog: PartitionLog, header: BatchHeader, batch: Buffer
        ) -> Verdict:
            if failing and topic == OFFSETS_TOPIC and header.has_producer_id:
                raise StorageError("planted: the producer-state snapshot could not be read")
            return check(topic, partition, plog, header, batch)

        monkeypatch.setattr(broker.producers, "check", planted)
        offsets = {TP: CommittedOffset(5, -1, "", 1000)}
        groups = broker.groups
        refused, _ = await groups.txn_commit_offsets("g", (PID, EPOCH), "", None, -1, offsets)
        nothing_pending = not groups.has_pending_txn_offset("g", TP)
        failing = False
        written, _ = await groups.txn_commit_offsets("g", (PID, EPOCH), "", None, -1, offsets)
        failing = True
        marker = SimpleNamespace(
            producer_id=PID, producer_epoch=EPOCH, transaction_result=True, coordinator_epoch=0
        )
        answer = await _write(broker, marker, OFFSETS_TOPIC, 0)  # type: ignore[arg-type]
        still_pending = groups.has_pending_txn_offset("g", TP)
        await groups.stop()
        return refused, written, answer, nothing_pending and still_pending

    try:
        refused, written, answer, pending_as_logged = asyncio.run(scenario())
    finally:
        logs.close()
    assert (refused, written) == (ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.NONE)
    assert answer == ErrorCode.KAFKA_STORAGE_ERROR
    assert pending_as_logged
