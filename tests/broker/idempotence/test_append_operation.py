"""The broker's one append operation (:meth:`Broker.append`), seen from the handlers.

Every writer goes through it: a Fetch parked on ``__consumer_offsets`` wakes when a group
commits (the offsets log once wrote past it), and the producer-state snapshot an append
starts is tracked until :meth:`Broker.drain` (it was once left running at shutdown).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.context import RequestContext
from shoal.broker.handlers import HANDLERS
from shoal.coordinator.offsets_log import OFFSETS_TOPIC
from shoal.coordinator.producers import SNAPSHOT_FILE, Producers, SnapshotJob
from shoal.protocol import ApiKey, Request, RequestHeader
from shoal.protocol._kio import request_class
from shoal.protocol.build import build
from shoal.records import SimpleRecord, build_batch
from shoal.storage import LogManager
from shoal.storage.fs import OsFileSystem
from shoal.testing.responses import as_client_reads
from tests.server.wire import fetch_values

CTX = RequestContext(client_id="test", client_host="127.0.0.1", client_port=1)
FETCH_VERSION = 11
PRODUCE_VERSION = 9
OFFSET_COMMIT_VERSION = 8
LONG_POLL_MS = 60_000
"""Far longer than the test: a Fetch that returns did so because it was woken."""
TICKS_MAX = 1_000
"""Event-loop turns a woken task may take to finish (it needs a handful)."""


def _request(api_key: int, version: int, values: dict[str, Any]) -> Request:
    body = build(request_class(api_key, version), values)
    return Request(RequestHeader(api_key, version, 1, "test"), body)


async def _finishes(task: asyncio.Future[Any]) -> bool:
    """Whether ``task`` finishes within TICKS_MAX turns of the event loop (no clock involved)."""
    for _ in range(TICKS_MAX):
        if task.done():
            return True
        await asyncio.sleep(0)
    return task.done()


@pytest.fixture
def logs(tmp_path: Path) -> Any:
    manager = LogManager.open(str(tmp_path / "data"))
    yield manager
    manager.close()


def test_fetch_parked_on_consumer_offsets_wakes_when_a_group_commits(logs: LogManager) -> None:
    async def scenario() -> None:
        broker = Broker(BrokerSettings(fetch_max_wait_ms_max=LONG_POLL_MS), logs, handlers=HANDLERS)
        broker.ensure_internal_topic(OFFSETS_TOPIC)  # as the first FindCoordinator does
        broker.create_topic("orders", 1)
        offsets_log = broker.partition(OFFSETS_TOPIC, 0)
        assert offsets_log is not None
        end = offsets_log.log_end_offset
        fetch = asyncio.ensure_future(
            broker.handle(
                CTX,
                _request(
                    ApiKey.FETCH,
                    FETCH_VERSION,
                    fetch_values(OFFSETS_TOPIC, end, max_wait_ms=LONG_POLL_MS, min_bytes=1),
                ),
            )
        )
        assert not await _finishes(fetch), "the Fetch must park: nothing is there to read yet"
        commit = await broker.handle(
            CTX,
            _request(
                ApiKey.OFFSET_COMMIT,
                OFFSET_COMMIT_VERSION,
                {
                    "group_id": "readers",
                    "generation_id_or_member_epoch": -1,
                    "member_id": "",
                    "group_instance_id": None,
                    "topics": [
                        {
                            "name": "orders",
                            "partitions": [
                                {
                                    "partition_index": 0,
                                    "committed_offset": 7,
                                    "committed_leader_epoch": -1,
                                    "committed_metadata": "",
                                }
                            ],
                        }
                    ],
                },
            ),
        )
        assert commit.topics[0].partitions[0].error_code == 0
        assert await _finishes(fetch), "the commit's append did not wake the parked Fetch"
        partition = fetch.result().topics[0].partitions[0]
        assert partition.error_code == 0
        assert partition.records, "the woken Fetch returns the commit's record"
        await broker.groups.stop()
        await broker.drain()

    asyncio.run(scenario())


def _produce_values(topic: str, records: bytes) -> dict[str, Any]:
    return {
        "transactional_id": None,
        "acks": 1,
        "timeout": 10_000,
        "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}],
    }


def test_the_producer_snapshot_an_append_starts_is_finished_by_drain(
    logs: LogManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The snapshot job is held on its worker thread until the test lets it go, so "drain
    # waits for it" does not depend on how fast the thread happens to be.
    release = threading.Event()
    started = threading.Event()
    run = SnapshotJob.run

    def held_run(job: SnapshotJob) -> None:
        started.set()
        release.wait()
        run(job)

    monkeypatch.setattr(SnapshotJob, "run", held_run)

    async def scenario() -> None:
        try:
            broker = Broker(BrokerSettings(), logs, handlers=HANDLERS)
            # A snapshot after every append (the broker's default is every 10,000 batches).
            broker.producers = Producers(
                OsFileSystem(), logs, broker.clock, snapshot_interval_batches=1
            )
            broker.create_topic("t", 1)
            records = build_batch(
                [SimpleRecord(value=b"v")], producer_id=3, producer_epoch=0, base_sequence=0
            )
            answer = as_client_reads(
                await broker.handle(
                    CTX, _request(ApiKey.PRODUCE, PRODUCE_VERSION, _produce_values("t", records))
                ),
                ApiKey.PRODUCE,
                PRODUCE_VERSION,
            )
            assert answer.responses[0].partition_responses[0].error_code == 0
            assert broker.pending_snapshot_jobs == 1
            await asyncio.to_thread(started.wait)
            drain = asyncio.ensure_future(broker.drain())
            assert not await _finishes(drain), "drain returned while the snapshot was still running"
            release.set()
            await drain
            assert broker.pending_snapshot_jobs == 0
            plog = broker.partition("t", 0)
            assert plog is not None
            assert plog.read_side_file(SNAPSHOT_FILE) is not None
        finally:
            # Else asyncio.run would wait forever for the held thread at its end.
            release.set()

    asyncio.run(scenario())
