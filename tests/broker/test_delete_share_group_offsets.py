"""DeleteShareGroupOffsets against a member that joins while the request waits on the disk,
and a fetch that comes while its tombstones are being written (issue 16).

The handler found the group empty, then awaited per partition: a member that joined and fetched
in between had its records in flight dropped by the request. Now the request reads the disk
first, checks the group again and forgets every partition with no await in between; and a
share-partition read while a tombstone is still being written sees the tombstone, not the old
state on disk. The broker is called in-process, as the server calls it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.context import RequestContext
from shoal.broker.handlers import HANDLERS
from shoal.broker.share_state_writer import ShareStateWriter
from shoal.coordinator.share_partition import AcknowledgementBatch
from shoal.coordinator.share_state import encode_deleted
from shoal.protocol import ErrorCode, Request, RequestHeader
from shoal.protocol._kio import request_class
from shoal.protocol.build import build
from shoal.storage import LogManager
from shoal.testing.responses import as_client_reads
from tests.storage.batches import make_batch

GROUP, TOPIC = "workers", "jobs"
DELETE_SHARE_GROUP_OFFSETS = 92
ACCEPT = 1
RECORDS = 4
WAIT_S_MAX = 30.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    logs = LogManager.open(str(tmp_path / "data"))
    broker = Broker(BrokerSettings(), logs, handlers=HANDLERS)
    broker.create_topic(TOPIC, 2)
    for index in range(2):
        plog = broker.partition(TOPIC, index)
        assert plog is not None
        for seed in range(RECORDS):
            plog.append(make_batch(seed=seed))
    yield broker
    logs.close()


def _plog(broker: Broker, index: int) -> Any:
    plog = broker.partition(TOPIC, index)
    assert plog is not None
    return plog


async def _accept_first_record(broker: Broker) -> None:
    """Each partition's state on disk: record 0 accepted by a member that has left since."""
    for index in range(2):
        plog = _plog(broker, index)
        broker.share_groups.reset(GROUP, TOPIC, index, plog, 0)  # as AlterShareGroupOffsets
        sp = broker.share_groups.share_partition(GROUP, TOPIC, index, plog)
        assert sp.acquire("gone", list(range(RECORDS)), 1)
        sp.acknowledge("gone", [AcknowledgementBatch(0, 0, (ACCEPT,))])
        written = broker.share_groups.persist(GROUP, TOPIC, index, plog)
        assert written is not None
        await written


async def _delete(broker: Broker) -> Any:
    values = {"group_id": GROUP, "topics": [{"topic_name": TOPIC}]}
    body = build(request_class(DELETE_SHARE_GROUP_OFFSETS, 0), values)
    request = Request(RequestHeader(DELETE_SHARE_GROUP_OFFSETS, 0, 1, "test"), body)
    ctx = RequestContext(client_id="test", client_host="127.0.0.1", client_port=1)
    answer = await broker.handle(ctx, request)
    return as_client_reads(answer, DELETE_SHARE_GROUP_OFFSETS, 0)


def test_a_member_joining_while_the_request_reads_the_disk_keeps_its_records(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_to_thread = asyncio.to_thread
    joined: list[Any] = []

    async def member_joins_meanwhile(call: Callable[..., Any], /, *args: Any) -> Any:
        if not joined:
            # A member joins and fetches partition 1 while the request is off the loop.
            broker.share_groups.group(GROUP).heartbeat("m1", 0, (TOPIC,), {TOPIC: 2})
            sp = broker.share_groups.share_partition(GROUP, TOPIC, 1, _plog(broker, 1))
            assert sp.acquire("m1", list(range(1, RECORDS)), 2)
            joined.append(sp)
        return await real_to_thread(call, *args)

    async def scenario() -> Any:
        await _accept_first_record(broker)
        monkeypatch.setattr(asyncio, "to_thread", member_joins_meanwhile)
        return await _delete(broker)

    response = asyncio.run(scenario())
    assert joined, "the request never left the loop"
    assert response.error_code == ErrorCode.NON_EMPTY_GROUP
    # Nothing changed: the member's acquisitions stand, both partitions keep their state.
    assert broker.share_groups.partitions[(GROUP, TOPIC, 1)] is joined[0]
    assert broker.share_groups.partitions[(GROUP, TOPIC, 0)].start_offset == 1


def test_a_fetch_while_the_tombstone_is_written_does_not_see_the_old_state(
    broker: Broker,
) -> None:
    gate = threading.Event()
    tombstones: list[object] = []
    tombstone_waits = asyncio.Event()

    async def gated_thread(call: Callable[[], None]) -> None:
        # The writer hands over functools.partial(plog.append_side_journal, name, payload).
        if getattr(call, "args", (None, None))[1] == encode_deleted(GROUP):
            tombstones.append(call)
            tombstone_waits.set()
            await asyncio.to_thread(gate.wait)  # the tombstones wait at the gate
        await asyncio.to_thread(call)

    broker.share_groups.writer = ShareStateWriter(gated_thread)

    async def scenario() -> tuple[Any, int, int]:
        await _accept_first_record(broker)
        broker.share_groups.partitions.clear()  # as after a restart: the state is on disk only
        deleting = asyncio.create_task(_delete(broker))
        # Until a tombstone write waits at the gate: the request first reads the state on a
        # worker thread, which a loaded machine can make slow (the bound catches a hang only).
        await asyncio.wait_for(tombstone_waits.wait(), WAIT_S_MAX)
        assert tombstones, "the request wrote no tombstone"
        plog = _plog(broker, 0)
        # As a ShareFetch does: the partition, made afresh, is in memory at once; the load
        # returns once its new state is written, after the tombstone (one file, in order).
        loading = asyncio.create_task(broker.share_groups.load(GROUP, [(TOPIC, 0, plog)]))
        await asyncio.sleep(0)  # the load's first step installs it (from the pending write)
        assert (GROUP, TOPIC, 0) in broker.share_groups.partitions
        start = broker.share_groups.share_partition(GROUP, TOPIC, 0, plog).start_offset
        gate.set()
        await loading
        return await deleting, start, plog.log_end_offset

    response, start, log_end = asyncio.run(scenario())
    assert response.error_code == ErrorCode.NONE
    assert [r.error_code for r in response.responses] == [ErrorCode.NONE]
    # Where share.auto.offset.reset says for a partition without state (latest, the default:
    # the log end), not the old state's start offset (1).
    assert start == log_end == RECORDS
