"""The transaction service answers and writes markers only from durable state, on a fake
clock: the timer leaves the markers of a prepare whose log write is still in flight (a crash
would otherwise leave markers of a transaction the log calls Ongoing), an "already added"
answer waits for the add that covers it, and only an add that sets a deadline wakes the timer.

The ``__transaction_state`` write is held open by replacing the log's append with one that
returns a future the test completes, as a slow or failing fsync would."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from shoal.broker.broker import Broker
from shoal.coordinator.txn_state import TxnState
from shoal.protocol import ErrorCode
from shoal.storage import StorageError
from tests.broker.transactions.test_recovery import (
    TIMEOUT_MS,
    TXN,
    Node,
    lso,
    open_transaction,
)

LOOP_TURNS_MAX = 50
"""Loop turns given to a request that has nothing to wait for (it needs one or two)."""


class HeldLog:
    """Replaces ``state_log.append``: every write is answered by one future, held until the
    test settles it (nothing reaches the disk; the state is only what the coordinator holds)."""

    def __init__(self) -> None:
        self.fsync: Future[None] = Future()
        self.writes = 0

    def append(self, metas: Any) -> Future[None]:
        self.writes += 1
        return self.fsync


def failing_append(metas: Any) -> Any:
    raise StorageError("test: the disk refuses the state record")


async def turns(n: int = LOOP_TURNS_MAX) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_the_timer_leaves_the_markers_of_a_prepare_still_being_logged(tmp_path: Path) -> None:
    node = Node(tmp_path)
    broker = node.start()
    broker.create_topic("t", 1)
    service = broker.transactions
    service._kick = lambda: None  # type: ignore[method-assign]  # the test runs the timer

    async def scenario(broker: Broker) -> None:
        pid, epoch = await open_transaction(broker)
        real_append = service.state_log.append
        service.state_log.append = failing_append  # type: ignore[method-assign]
        assert await service.end_txn(TXN, pid, epoch, True) is ErrorCode.COORDINATOR_NOT_AVAILABLE
        meta = service.coordinator.get(TXN)
        assert meta is not None and meta.state is TxnState.PREPARE_COMMIT
        held = HeldLog()
        service.state_log.append = held.append  # type: ignore[method-assign]
        # Another id's request logs every queued change, the requeued prepare with it.
        other = asyncio.ensure_future(service.init_producer_id("other", TIMEOUT_MS, -1, -1))
        await turns()
        assert held.writes == 1 and not other.done()
        await service.tick()
        assert lso(broker) == (0, 1)  # no marker: the prepare is not durable yet
        assert meta.state is TxnState.PREPARE_COMMIT
        held.fsync.set_result(None)
        assert (await other).error is ErrorCode.NONE
        service.state_log.append = real_append  # type: ignore[method-assign]
        await service.tick()
        assert meta.state is TxnState.COMPLETE_COMMIT

    node.run(scenario)
    assert lso(broker) == (2, 2)


def test_already_added_is_answered_once_the_add_that_covers_it_is_durable(
    tmp_path: Path,
) -> None:
    node = Node(tmp_path)
    broker = node.start()
    broker.create_topic("t", 1)
    service = broker.transactions
    service._kick = lambda: None  # type: ignore[method-assign]  # no timer: only these writes

    async def scenario(broker: Broker) -> None:
        init = await service.init_producer_id(TXN, TIMEOUT_MS, -1, -1)
        pid, epoch = init.producer_id, init.producer_epoch
        held = HeldLog()
        service.state_log.append = held.append  # type: ignore[method-assign]
        tp = [("t", 0)]
        first = asyncio.ensure_future(service.add_partitions(TXN, pid, epoch, tp))
        await turns()
        # The client retries on another connection while the first add is being logged.
        retry = asyncio.ensure_future(service.add_partitions(TXN, pid, epoch, tp))
        await turns()
        assert not first.done() and not retry.done()
        held.fsync.set_exception(StorageError("test: the fsync failed"))
        assert await first is ErrorCode.COORDINATOR_NOT_AVAILABLE
        assert await retry is ErrorCode.COORDINATOR_NOT_AVAILABLE
        # The change is queued again: the next ask logs it before answering.
        held.fsync = Future()
        again = asyncio.ensure_future(service.add_partitions(TXN, pid, epoch, tp))
        await turns()
        assert held.writes == 2 and not again.done()
        held.fsync.set_result(None)
        assert await again is ErrorCode.NONE
        assert service.coordinator.is_logged(TXN)

    node.run(scenario)


def test_only_an_add_that_sets_a_deadline_wakes_the_timer(tmp_path: Path) -> None:
    node = Node(tmp_path)
    broker = node.start()
    broker.create_topic("t", 3)
    service = broker.transactions
    kicks = 0
    real_kick = service._kick

    def counting_kick() -> None:
        nonlocal kicks
        kicks += 1
        real_kick()

    service._kick = counting_kick  # type: ignore[method-assign]

    async def scenario(broker: Broker) -> None:
        init = await service.init_producer_id(TXN, TIMEOUT_MS, -1, -1)
        pid, epoch = init.producer_id, init.producer_epoch
        assert await service.add_partitions(TXN, pid, epoch, [("t", 0)]) is ErrorCode.NONE
        assert kicks == 1  # the transaction opens: its deadline starts the timer
        for _ in range(LOOP_TURNS_MAX):  # bounded: the timer goes to sleep within a few turns
            if service._timer_wake_ms is not None:
                break
            await asyncio.sleep(0)
        assert service._timer_wake_ms is not None
        for partition in (1, 2, 0):
            added = await service.add_partitions(TXN, pid, epoch, [("t", partition)])
            assert added is ErrorCode.NONE
        assert kicks == 1  # same transaction, same deadline: the timer sleeps on
        # A transaction with a shorter timeout does need the timer sooner.
        short = await service.init_producer_id("short", 1000, -1, -1)
        added = await service.add_partitions(
            "short", short.producer_id, short.producer_epoch, [("t", 1)]
        )
        assert added is ErrorCode.NONE and kicks == 2

    node.run(scenario)
