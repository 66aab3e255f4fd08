"""InitProducerId and idempotent Produce through the broker's handlers, without a network.

Requests are kio messages built from plain values and handed to :meth:`Broker.handle`, the way
the server hands them over after decoding; responses are read back as the client would.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.context import RequestContext
from shoal.broker.handlers import HANDLERS
from shoal.protocol import ApiKey, ErrorCode, Request, RequestHeader
from shoal.protocol._kio import request_class
from shoal.protocol.build import build
from shoal.records import SimpleRecord, build_batch
from shoal.storage import LogManager
from shoal.testing.responses import as_client_reads

CTX = RequestContext(client_id="test", client_host="127.0.0.1", client_port=1)
PRODUCE_VERSION = 9


class Harness:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.logs: LogManager | None = None
        self.broker: Broker | None = None

    def start(self) -> Broker:
        self.logs = LogManager.open(str(self.data_dir))
        self.broker = Broker(BrokerSettings(), self.logs, handlers=HANDLERS)
        return self.broker

    def restart(self) -> Broker:
        self.stop()
        return self.start()

    def stop(self) -> None:
        if self.logs is not None:
            self.logs.close()
        self.logs = self.broker = None

    def call(self, api_key: int, version: int, values: dict[str, Any]) -> Any:
        assert self.broker is not None
        body = build(request_class(api_key, version), values)
        request = Request(RequestHeader(api_key, version, 1, "test"), body)
        return as_client_reads(asyncio.run(self.broker.handle(CTX, request)), api_key, version)

    def init_producer_id(self, version: int = 4, **values: Any) -> tuple[int, int, int]:
        response = self.call(
            ApiKey.INIT_PRODUCER_ID,
            version,
            {"transactional_id": None, "transaction_timeout": 60_000, **values},
        )
        return int(response.error_code), int(response.producer_id), int(response.producer_epoch)

    def produce(
        self,
        batches: dict[tuple[str, int], bytes],
        *,
        acks: int = -1,
    ) -> dict[tuple[str, int], tuple[int, int, int]]:
        """``(topic, partition) -> (error code, base offset, log append time)``."""
        topics: dict[str, list[dict[str, Any]]] = {}
        for (topic, partition), records in batches.items():
            topics.setdefault(topic, []).append({"index": partition, "records": records})
        response = self.call(
            ApiKey.PRODUCE,
            PRODUCE_VERSION,
            {
                "transactional_id": None,
                "acks": acks,
                "timeout": 10_000,
                "topic_data": [
                    {"name": name, "partition_data": parts} for name, parts in topics.items()
                ],
            },
        )
        return {
            (t.name, int(p.index)): (
                int(p.error_code),
                int(p.base_offset),
                millis(p.log_append_time),
            )
            for t in response.responses
            for p in t.partition_responses
        }


def millis(when: datetime.datetime | None) -> int:
    return -1 if when is None else round(when.timestamp() * 1000)


def batch(pid: int, epoch: int, seq: int, count: int = 2, *, transactional: bool = False) -> bytes:
    return build_batch(
        [SimpleRecord(value=f"{pid}:{epoch}:{seq + i}".encode()) for i in range(count)],
        base_timestamp=1_700_000_000_000,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        transactional=transactional,
    )


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "data")
    h.start()
    yield h
    h.stop()


def log_end(h: Harness, topic: str, partition: int = 0) -> int:
    assert h.broker is not None
    plog = h.broker.partition(topic, partition)
    assert plog is not None
    return plog.log_end_offset


@pytest.mark.parametrize("version", range(6))
def test_init_producer_id_hands_out_fresh_ids_at_epoch_0(harness: Harness, version: int) -> None:
    ids = [harness.init_producer_id(version) for _ in range(3)]
    assert [error for error, _, _ in ids] == [0, 0, 0]
    assert [epoch for _, _, epoch in ids] == [0, 0, 0]
    assert len({pid for _, pid, _ in ids}) == 3


def test_ids_never_repeat_across_restarts(harness: Harness) -> None:
    seen = {harness.init_producer_id()[1] for _ in range(5)}
    for _ in range(3):
        harness.restart()
        fresh = {harness.init_producer_id()[1] for _ in range(5)}
        assert not fresh & seen
        seen |= fresh


def test_kip_360_request_gets_a_new_id_as_in_kafka(harness: Harness) -> None:
    _, pid, _ = harness.init_producer_id()
    error, new_pid, epoch = harness.init_producer_id(4, producer_id=pid, producer_epoch=0)
    assert (error, epoch) == (0, 0)
    assert new_pid != pid


def test_transactional_ids_get_epochs_and_an_empty_one_is_refused(harness: Harness) -> None:
    error, pid, epoch = harness.init_producer_id(4, transactional_id="orders-tx")
    assert (error, epoch) == (ErrorCode.NONE, 0) and pid >= 0
    assert harness.init_producer_id(4, transactional_id="orders-tx") == (ErrorCode.NONE, pid, 1)
    assert harness.init_producer_id(4, transactional_id="")[0] == ErrorCode.INVALID_REQUEST


def test_retried_batch_is_answered_with_its_original_offset(harness: Harness) -> None:
    assert harness.broker is not None
    harness.broker.create_topic("t", 2)
    _, pid, _ = harness.init_producer_id()
    first = harness.produce({("t", 0): batch(pid, 0, 0), ("t", 1): batch(pid, 0, 0)})
    second = harness.produce({("t", 0): batch(pid, 0, 2)})
    assert first == {("t", 0): (0, 0, -1), ("t", 1): (0, 0, -1)}
    assert second == {("t", 0): (0, 2, -1)}
    # Retries of both batches on partition 0, and one new batch on partition 1.
    assert harness.produce({("t", 0): batch(pid, 0, 0)}) == {("t", 0): (0, 0, -1)}
    assert harness.produce({("t", 0): batch(pid, 0, 2), ("t", 1): batch(pid, 0, 2)}) == {
        ("t", 0): (0, 2, -1),
        ("t", 1): (0, 2, -1),
    }
    assert (log_end(harness, "t", 0), log_end(harness, "t", 1)) == (4, 4)


def test_errors_are_per_partition(harness: Harness) -> None:
    assert harness.broker is not None
    harness.broker.create_topic("t", 3)
    _, pid, _ = harness.init_producer_id()
    for partition in range(3):
        harness.produce({("t", partition): batch(pid, 1, 0)})
    answers = harness.produce(
        {
            ("t", 0): batch(pid, 1, 5),  # a gap
            ("t", 1): batch(pid, 0, 2),  # an older epoch
            ("t", 2): batch(pid, 1, 2),  # in sequence
        }
    )
    assert answers == {
        ("t", 0): (ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, -1, -1),
        ("t", 1): (ErrorCode.INVALID_PRODUCER_EPOCH, -1, -1),
        ("t", 2): (0, 2, -1),
    }
    assert [log_end(harness, "t", p) for p in range(3)] == [2, 2, 4]


def test_transactional_batches_outside_a_transaction_are_refused(harness: Harness) -> None:
    assert harness.broker is not None
    harness.broker.create_topic("t", 1)
    answer = harness.produce({("t", 0): batch(5, 0, 0, transactional=True)})
    assert answer == {("t", 0): (ErrorCode.INVALID_TXN_STATE, -1, -1)}
    assert log_end(harness, "t") == 0


def test_duplicates_survive_a_restart(harness: Harness) -> None:
    assert harness.broker is not None
    harness.broker.create_topic("t", 1)
    _, pid, _ = harness.init_producer_id()
    for seq in (0, 2, 4):
        harness.produce({("t", 0): batch(pid, 0, seq)})
    harness.restart()
    assert harness.produce({("t", 0): batch(pid, 0, 2)}) == {("t", 0): (0, 2, -1)}
    assert harness.produce({("t", 0): batch(pid, 0, 6)}) == {("t", 0): (0, 6, -1)}
    assert log_end(harness, "t") == 8


def test_duplicate_on_log_append_time_topic_returns_the_original_time(harness: Harness) -> None:
    assert harness.broker is not None
    harness.broker.create_topic("t", 1, {"message.timestamp.type": "LogAppendTime"})
    _, pid, _ = harness.init_producer_id()
    (_, _, appended_at) = harness.produce({("t", 0): batch(pid, 0, 0)})[("t", 0)]
    assert appended_at > 0
    assert harness.produce({("t", 0): batch(pid, 0, 0)}) == {("t", 0): (0, 0, appended_at)}
