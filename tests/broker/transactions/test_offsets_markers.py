"""Markers on ``__consumer_offsets`` are checked as on any partition (Kafka's
ProducerAppendInfo): an operator's ABORT (WriteTxnMarkers, as ``kafka-transactions abort``
sends it) from a producer epoch older than the transaction's offset commits is refused with
INVALID_PRODUCER_EPOCH and drops nothing, so the live transaction's offsets commit with it; one
from an older coordinator epoch than the producer's last marker there is
TRANSACTION_COORDINATOR_FENCED; a current marker ends the transaction's offsets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.coordinator.offsets_log import OFFSETS_TOPIC
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

TIMEOUT_MS = 60_000
GROUP = "g"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[WireClient]:
    with EmbeddedBroker(str(tmp_path / "data"), num_partitions=1) as broker:
        with WireClient(broker.bootstrap_servers) as wire:
            wire.metadata(["t"], auto_create=True)
            yield wire


class Txn:
    """One transactional id's requests, raw (the classic protocol: EndTxn v3)."""

    def __init__(self, client: WireClient, txn_id: str) -> None:
        self.client, self.txn_id = client, txn_id
        self.pid, self.epoch = self.init()

    def init(self) -> tuple[int, int]:
        answer = self.client.request(
            ApiKey.INIT_PRODUCER_ID,
            4,
            {"transactional_id": self.txn_id, "transaction_timeout": TIMEOUT_MS,
             "producer_id": -1, "producer_epoch": -1},
        )  # fmt: skip
        assert answer.error_code == ErrorCode.NONE
        return int(answer.producer_id), int(answer.producer_epoch)

    def ids(self) -> dict[str, Any]:
        return {"transactional_id": self.txn_id, "producer_id": self.pid,
                "producer_epoch": self.epoch}  # fmt: skip

    def commit_offset(self, offset: int) -> int:
        added = self.client.request(ApiKey.ADD_OFFSETS_TO_TXN, 3, {**self.ids(), "group_id": GROUP})
        assert added.error_code == ErrorCode.NONE
        answer = self.client.request(
            ApiKey.TXN_OFFSET_COMMIT,
            3,
            {**self.ids(), "group_id": GROUP, "generation_id": -1, "member_id": "",
             "group_instance_id": None,
             "topics": [{"name": "t", "partitions": [
                 {"partition_index": 0, "committed_offset": offset, "committed_metadata": ""}]}]},
        )  # fmt: skip
        return int(answer.topics[0].partitions[0].error_code)

    def end(self, commit: bool) -> int:
        answer = self.client.request(ApiKey.END_TXN, 3, {**self.ids(), "committed": commit})
        return int(answer.error_code)

    def operator_abort(self, epoch: int, coordinator_epoch: int) -> int:
        """An ABORT marker for the group's offsets partition (shoal has one)."""
        marker = {
            "producer_id": self.pid,
            "producer_epoch": epoch,
            "transaction_result": False,
            "topics": [{"name": OFFSETS_TOPIC, "partition_indexes": [0]}],
            "coordinator_epoch": coordinator_epoch,
        }
        answer = self.client.request(ApiKey.WRITE_TXN_MARKERS, 1, {"markers": [marker]})
        return int(answer.markers[0].topics[0].partitions[0].error_code)


def committed(client: WireClient) -> int:
    answer = client.request(
        ApiKey.OFFSET_FETCH,
        7,
        {"group_id": GROUP, "topics": [{"name": "t", "partition_indexes": [0]}],
         "require_stable": False},
    )  # fmt: skip
    return int(answer.topics[0].partitions[0].committed_offset)


def test_a_stale_abort_leaves_the_live_transactions_offsets(client: WireClient) -> None:
    txn = Txn(client, "live")
    txn.pid, txn.epoch = txn.init()  # a second instance: epoch 1, the first is fenced
    assert txn.epoch >= 1
    assert txn.commit_offset(5) == ErrorCode.NONE
    # The fenced instance's epoch: refused, nothing dropped.
    stale = txn.operator_abort(txn.epoch - 1, 0)
    assert txn.end(commit=True) == ErrorCode.NONE
    assert (stale, committed(client)) == (ErrorCode.INVALID_PRODUCER_EPOCH, 5)


def test_a_current_abort_drops_the_offsets_and_an_older_coordinator_is_fenced(
    client: WireClient,
) -> None:
    txn = Txn(client, "hung")
    assert txn.commit_offset(5) == ErrorCode.NONE
    assert txn.end(commit=True) == ErrorCode.NONE
    assert txn.commit_offset(9) == ErrorCode.NONE
    # The operator ends the transaction's offsets with a current marker (coordinator epoch 0,
    # the coordinator's own: its markers stay accepted).
    assert txn.operator_abort(txn.epoch, 0) == ErrorCode.NONE
    assert committed(client) == 5
    assert txn.end(commit=False) == ErrorCode.NONE  # the coordinator's own ABORT, accepted
    assert txn.commit_offset(11) == ErrorCode.NONE
    assert txn.operator_abort(txn.epoch, 3) == ErrorCode.NONE
    assert txn.operator_abort(txn.epoch, 2) == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    assert committed(client) == 5


def test_the_offsets_partition_knows_the_epoch_after_a_restart(tmp_path: Path) -> None:
    """The epoch comes from the TxnOffsetCommit batch in the log (replayed at start)."""
    data = str(tmp_path / "data")
    with EmbeddedBroker(data, num_partitions=1) as broker:
        with WireClient(broker.bootstrap_servers) as wire:
            wire.metadata(["t"], auto_create=True)
            txn = Txn(wire, "restarted")
            txn.pid, txn.epoch = txn.init()
            assert txn.commit_offset(5) == ErrorCode.NONE
    # Without the producer-state snapshot (if one was written), the state comes from the log.
    (tmp_path / "data" / f"{OFFSETS_TOPIC}-0" / "producer-state").unlink(missing_ok=True)
    assert (tmp_path / "data" / f"{OFFSETS_TOPIC}-0").is_dir()
    with EmbeddedBroker(data, num_partitions=1) as broker:
        with WireClient(broker.bootstrap_servers) as wire:
            txn.client = wire
            stale = txn.operator_abort(txn.epoch - 1, 0)
            assert txn.end(commit=True) == ErrorCode.NONE
            assert (stale, committed(wire)) == (ErrorCode.INVALID_PRODUCER_EPOCH, 5)
