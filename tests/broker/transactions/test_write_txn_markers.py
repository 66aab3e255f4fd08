"""An operator's ABORT marker (WriteTxnMarkers, as ``kafka-transactions abort`` sends it) is
durable: the partition's last stable offset moves past the transaction it ends at once, and
stays there after a restart (the marker is replayed from the log), and so does the coordinator
epoch it carried: a marker from an older coordinator is still fenced after the restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.broker.transactions.clients import (
    TIMEOUT_S,
    abort_marker,
    latest_offset,
    read_all,
    transactional_producer,
)
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration


def test_an_operators_abort_marker_is_durable(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with EmbeddedBroker(data, num_partitions=1) as broker:
        gone = transactional_producer(broker, "gone")
        gone.begin_transaction()
        gone.produce("r", value=b"hung", partition=0)
        gone.flush(TIMEOUT_S)
        assert latest_offset(broker, "r", "read_committed") == 0
        with WireClient(broker.bootstrap_servers) as client:
            described = client.request(
                ApiKey.DESCRIBE_PRODUCERS, 0, {"topics": [{"name": "r", "partition_indexes": [0]}]}
            )
            (producer,) = described.topics[0].partitions[0].active_producers
            assert int(producer.current_txn_start_offset) == 0
            pid, epoch = int(producer.producer_id), int(producer.producer_epoch)
            assert abort_marker(client, pid, epoch, coordinator_epoch=4) == ErrorCode.NONE
        assert latest_offset(broker, "r", "read_committed") == 2  # the record, the marker
    with EmbeddedBroker(data, num_partitions=1) as broker:
        assert latest_offset(broker, "r", "read_committed") == 2
        assert read_all(broker, "r", "read_committed", 0, partitions=1) == []
        with WireClient(broker.bootstrap_servers) as client:
            described = client.request(
                ApiKey.DESCRIBE_PRODUCERS, 0, {"topics": [{"name": "r", "partition_indexes": [0]}]}
            )
            (producer,) = described.topics[0].partitions[0].active_producers
            assert int(producer.coordinator_epoch) == 4
            stale = abort_marker(client, pid, epoch, coordinator_epoch=3)
            assert stale == ErrorCode.TRANSACTION_COORDINATOR_FENCED
        assert latest_offset(broker, "r", "read_committed") == 2  # nothing written
    del gone
