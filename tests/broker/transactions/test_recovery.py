"""The transaction coordinator's state across restarts (``__transaction_state``), the timer's
timeouts and expiry on a fake clock, and a crash between PrepareCommit and the markers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.handlers import HANDLERS
from shoal.coordinator.partition_txns import AbortedTxn
from shoal.coordinator.producer_state import EPOCH_MAX
from shoal.coordinator.txn_log import TXN_STATE_TOPIC
from shoal.coordinator.txn_state import TxnState
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ErrorCode
from shoal.records import SimpleRecord, build_batch, read_header
from shoal.storage import AppendInfo, LogManager, StorageError
from shoal.testing.clock import FakeClock
from tests.broker.transactions.clients import (
    TIMEOUT_S,
    latest_offset,
    read_all,
    transactional_producer,
)

T = TypeVar("T")
TIMEOUT_MS = 60_000
TXN = "tx"


class Node:
    """A broker without a server, reopened at will on the same data directory."""

    def __init__(self, path: Path, **config: int) -> None:
        self.path = str(path)
        self.clock = FakeClock()
        self.config = BrokerSettings(**config)  # type: ignore[arg-type]
        self.logs: LogManager | None = None
        self.broker: Broker | None = None

    def start(self) -> Broker:
        self.logs = LogManager.open(self.path)
        self.broker = Broker(self.config, self.logs, handlers=HANDLERS, clock=self.clock)
        return self.broker

    def crash(self) -> None:
        """A process crash: nothing more is written, every written byte stays."""
        assert self.logs is not None
        self.logs.abandon()
        self.logs = self.broker = None

    def run(self, step: Callable[[Broker], Awaitable[T]]) -> T:
        broker = self.broker
        assert broker is not None

        async def go() -> T:
            try:
                return await step(broker)
            finally:
                await broker.transactions.stop()

        return asyncio.run(go())


def transactional_batch(pid: int, epoch: int, seq: int) -> bytes:
    return build_batch(
        [SimpleRecord(value=b"v")],
        base_timestamp=0,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        transactional=True,
    )


async def open_transaction(broker: Broker, topic: str = "t") -> tuple[int, int]:
    """Init, add ``topic``-0 and append one transactional batch there."""
    init = await broker.transactions.init_producer_id(TXN, TIMEOUT_MS, -1, -1)
    assert init.error is ErrorCode.NONE
    pid, epoch = init.producer_id, init.producer_epoch
    added = await broker.transactions.add_partitions(TXN, pid, epoch, [(topic, 0)])
    assert added is ErrorCode.NONE
    plog = broker.partition(topic, 0)
    assert plog is not None
    batch = transactional_batch(pid, epoch, 0)
    assert isinstance(broker.append(topic, 0, plog, batch, read_header(batch)), AppendInfo)
    return pid, epoch


def lso(broker: Broker, topic: str = "t") -> tuple[int, int]:
    plog = broker.partition(topic, 0)
    assert plog is not None
    txns = broker.producers.txns(topic, 0, plog)
    return txns.last_stable_offset(plog.log_end_offset, plog.log_start_offset), plog.log_end_offset


def test_acknowledged_epochs_survive_a_restart(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.start()
    first = node.run(lambda b: b.transactions.init_producer_id(TXN, TIMEOUT_MS, -1, -1))
    node.crash()
    node.start()
    again = node.run(lambda b: b.transactions.init_producer_id(TXN, TIMEOUT_MS, -1, -1))
    assert (again.producer_id, again.producer_epoch) == (first.producer_id, 1)
    # A log with transactions in it: the topic is shown from the start, as after a lookup.
    assert node.broker is not None and node.broker.topics.get(TXN_STATE_TOPIC) is not None


def test_a_crash_between_prepare_commit_and_the_markers_is_finished_after_restart(
    tmp_path: Path,
) -> None:
    node = Node(tmp_path)
    broker = node.start()
    broker.create_topic("t", 1)
    # The crash comes before the timer could write the markers (it would at its next round).
    broker.transactions._kick = lambda: None  # type: ignore[method-assign]

    async def prepare_only(broker: Broker) -> None:
        pid, epoch = await open_transaction(broker)
        # EndTxn's decision, logged, and then the crash before any marker is written.
        result = broker.transactions.coordinator.end_txn(TXN, pid, epoch, commit=True)
        assert result.work is not None
        assert await broker.transactions._log_changes() is ErrorCode.NONE

    node.run(prepare_only)
    assert lso(broker) == (0, 1)
    node.crash()

    broker = node.start()
    meta = broker.transactions.coordinator.get(TXN)
    assert meta is not None and meta.state is TxnState.PREPARE_COMMIT
    assert lso(broker) == (0, 1)  # the open transaction holds the LSO across the restart
    node.run(lambda b: b.transactions.tick())
    assert meta.state is TxnState.COMPLETE_COMMIT
    assert lso(broker) == (2, 2)  # data at 0, its COMMIT marker at 1
    node.crash()
    broker = node.start()
    meta = broker.transactions.coordinator.get(TXN)
    assert meta is not None and meta.state is TxnState.COMPLETE_COMMIT
    assert lso(broker) == (2, 2)


def test_a_timed_out_transaction_is_aborted_and_its_producer_fenced(tmp_path: Path) -> None:
    node = Node(tmp_path)
    broker = node.start()
    broker.create_topic("t", 1)
    pid, epoch = node.run(open_transaction)
    node.clock.advance(TIMEOUT_MS)
    node.run(lambda b: b.transactions.tick())
    assert lso(broker) == (0, 1)  # not yet: the timeout is exclusive
    node.clock.advance(1)
    node.run(lambda b: b.transactions.tick())
    assert lso(broker) == (2, 2)
    plog = broker.partition("t", 0)
    assert plog is not None
    assert broker.producers.txns("t", 0, plog).aborted == [AbortedTxn(pid, 0, 1)]
    end = node.run(lambda b: b.transactions.end_txn(TXN, pid, epoch, True))
    assert end is ErrorCode.PRODUCER_FENCED
    # The partition knows the fenced epoch too: the old producer's next batch is refused.
    batch = transactional_batch(pid, epoch, 1)
    verdict = broker.producers.check("t", 0, plog, read_header(batch), batch)
    assert getattr(verdict, "error_code", None) is ErrorCode.INVALID_PRODUCER_EPOCH
    node.crash()
    meta = node.start().transactions.coordinator.get(TXN)
    assert meta is not None and meta.state is TxnState.COMPLETE_ABORT
    assert meta.producer_epoch == epoch + 1


def test_an_idle_id_expires_and_stays_forgotten_after_restart(tmp_path: Path) -> None:
    node = Node(tmp_path, transactional_id_expiration_ms=1000)
    node.start()
    first = node.run(lambda b: b.transactions.init_producer_id(TXN, TIMEOUT_MS, -1, -1))
    node.clock.advance(1000)
    node.run(lambda b: b.transactions.tick())
    node.crash()
    broker = node.start()
    assert broker.transactions.coordinator.get(TXN) is None
    again = node.run(lambda b: b.transactions.init_producer_id(TXN, TIMEOUT_MS, -1, -1))
    assert again.producer_id != first.producer_id and again.producer_epoch == 0


def test_the_state_log_is_rewritten_and_cut_when_it_grows(tmp_path: Path) -> None:
    node = Node(tmp_path)
    broker = node.start()

    async def churn(broker: Broker) -> None:
        log = broker.transactions.state_log
        for i in range(50):
            await broker.transactions.init_producer_id(f"id-{i % 5}", TIMEOUT_MS, -1, -1)
        assert log.plog.log_start_offset == 0
        broker.transactions.state_log.snapshot_due = lambda *a: True  # type: ignore[method-assign]
        await broker.transactions.init_producer_id("id-0", TIMEOUT_MS, -1, -1)

    node.run(churn)
    assert broker.transactions.state_log.plog.log_start_offset > 0
    node.crash()
    broker = node.start()
    epochs = {m.transactional_id: m.producer_epoch for m in broker.transactions.coordinator}
    assert epochs == {"id-0": 10, "id-1": 9, "id-2": 9, "id-3": 9, "id-4": 9}


@pytest.mark.integration
def test_a_restart_mid_transaction_keeps_the_lso_until_the_successor_aborts_it(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "data")
    with EmbeddedBroker(data, num_partitions=1) as broker:
        first = transactional_producer(broker, "restarted")
        first.begin_transaction()
        first.produce("r", value=b"kept", partition=0)
        first.commit_transaction(TIMEOUT_S)
        first.begin_transaction()
        first.produce("r", value=b"in-flight", partition=0)
        first.flush(TIMEOUT_S)
    with EmbeddedBroker(data, num_partitions=1) as broker:
        # offsets: 0 kept, 1 COMMIT, 2 in-flight (still open after the restart)
        assert latest_offset(broker, "r", "read_committed") == 2
        assert read_all(broker, "r", "read_committed", 1, partitions=1) == [b"kept"]
        successor = transactional_producer(broker, "restarted")
        assert latest_offset(broker, "r", "read_committed") == 4  # 3: the ABORT marker
        successor.begin_transaction()
        successor.produce("r", value=b"after", partition=0)
        successor.commit_transaction(TIMEOUT_S)
        assert read_all(broker, "r", "read_committed", 2, partitions=1) == [b"kept", b"after"]
    del first


def test_a_marker_that_cannot_be_written_is_retried_by_the_timer(tmp_path: Path) -> None:
    node = Node(tmp_path)
    broker = node.start()
    broker.create_topic("t", 1)
    service = broker.transactions
    real_append = service._append

    def failing(*args: Any) -> Any:
        raise StorageError("test: the disk refuses the marker")

    async def scenario(broker: Broker) -> None:
        pid, epoch = await open_transaction(broker)
        service._append = failing
        end = await service.end_txn(TXN, pid, epoch, True)
        assert end is ErrorCode.COORDINATOR_NOT_AVAILABLE  # retriable: the client asks again
        assert await service.end_txn(TXN, pid, epoch, True) is ErrorCode.CONCURRENT_TRANSACTIONS
        await service.tick()  # still failing: nothing changes
        meta = service.coordinator.get(TXN)
        assert meta is not None and meta.state is TxnState.PREPARE_COMMIT
        service._append = real_append
        await service.tick()
        assert meta.state is TxnState.COMPLETE_COMMIT
        assert await service.end_txn(TXN, pid, epoch, True) is ErrorCode.NONE

    node.run(scenario)
    assert lso(broker) == (2, 2)


def test_a_v2_end_on_the_exhausted_epoch_is_finished_after_a_crash(tmp_path: Path) -> None:
    """Transactions V2: the prepare of an EndTxn v5 at epoch EPOCH_MAX - 1 logs the bumped
    epoch and the producer id that follows (NextProducerId); a crash before the markers
    leaves exactly that to replay, and the restart finishes the rotation."""
    node = Node(tmp_path)
    broker = node.start()
    broker.create_topic("t", 1)
    broker.transactions._kick = lambda: None  # type: ignore[method-assign]
    last = EPOCH_MAX - 1

    async def prepare_only(broker: Broker) -> int:
        init = await broker.transactions.init_producer_id(TXN, TIMEOUT_MS, -1, -1)
        pid = init.producer_id
        meta = broker.transactions.coordinator.get(TXN)
        assert meta is not None
        meta.producer_epoch = last  # as after 32,766 transactions
        added = await broker.transactions.add_partitions(TXN, pid, last, [("t", 0)], 2)
        assert added is ErrorCode.NONE
        plog = broker.partition("t", 0)
        assert plog is not None
        batch = transactional_batch(pid, last, 0)
        assert isinstance(broker.append("t", 0, plog, batch, read_header(batch)), AppendInfo)
        result = broker.transactions.coordinator.end_txn(TXN, pid, last, True, bump_epoch=True)
        assert result.work is not None and result.work.producer_epoch == EPOCH_MAX
        assert await broker.transactions._log_changes() is ErrorCode.NONE
        return pid

    pid = node.run(prepare_only)
    node.crash()

    broker = node.start()
    meta = broker.transactions.coordinator.get(TXN)
    assert meta is not None and meta.state is TxnState.PREPARE_COMMIT
    assert (meta.producer_id, meta.producer_epoch, meta.client_transaction_version) == (
        pid,
        EPOCH_MAX,
        2,
    )
    next_pid = meta.next_producer_id
    assert next_pid not in (-1, pid)
    node.run(lambda b: b.transactions.tick())
    assert lso(broker) == (2, 2)
    node.crash()
    broker = node.start()
    meta = broker.transactions.coordinator.get(TXN)
    assert meta is not None and meta.state is TxnState.COMPLETE_COMMIT
    assert (meta.producer_id, meta.producer_epoch, meta.previous_producer_id) == (next_pid, 0, pid)
    # The client's retry from the old id's last epoch gets the new id, as from Kafka.
    retried = node.run(lambda b: b.transactions.end_txn_bumping(TXN, pid, last, True))
    assert retried == (ErrorCode.NONE, next_pid, 0)
