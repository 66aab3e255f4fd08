"""The coordinator epoch of shoal's own markers (issue 14 leftovers).

As in Kafka, the coordinator epoch written into a transaction marker is the leader epoch of
the ``__transaction_state`` partition, which rises at every broker start; and the coordinator's
own markers are checked as an operator's WriteTxnMarkers are: a partition that took a marker
for the producer from a newer coordinator (``kafka-transactions abort --coordinator-epoch``
with a higher epoch) refuses the coordinator's (TRANSACTION_COORDINATOR_FENCED) and nothing is
written there. The coordinator then leaves the transaction prepared, as Kafka's does, and its
next start, under a higher epoch, writes the markers again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from shoal.coordinator.txn_log import TXN_STATE_TOPIC
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


def _state_epoch(broker: EmbeddedBroker) -> int:
    """The leader epoch of the ``__transaction_state`` partition."""
    served = broker.app.broker
    assert served is not None
    plog = served.logs.get(TXN_STATE_TOPIC, 0)
    assert plog is not None
    return plog.leader_epoch


def _producer(client: WireClient, partition: int) -> Any:
    described = client.request(
        ApiKey.DESCRIBE_PRODUCERS, 0, {"topics": [{"name": "r", "partition_indexes": [partition]}]}
    )
    (producer,) = described.topics[0].partitions[0].active_producers
    return producer


def _state(client: WireClient, txn_id: str) -> str:
    described = client.request(ApiKey.DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": [txn_id]})
    (state,) = described.transaction_states
    assert state.error_code == ErrorCode.NONE
    return str(state.transaction_state)


def test_markers_carry_the_leader_epoch_of_transaction_state(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    epochs = []
    for run in range(2):
        with EmbeddedBroker(data, num_partitions=1) as broker:
            producer = transactional_producer(broker, "epochs")
            producer.begin_transaction()
            producer.produce("r", value=f"run {run}".encode(), partition=0)
            producer.commit_transaction(TIMEOUT_S)
            with WireClient(broker.bootstrap_servers) as client:
                epochs.append(int(_producer(client, 0).coordinator_epoch))
            assert epochs[-1] == _state_epoch(broker)
            del producer
    assert epochs[1] > epochs[0]


def test_a_newer_coordinators_marker_fences_shoals_own_until_a_higher_epoch(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "data")
    with EmbeddedBroker(data, num_partitions=2) as broker:
        producer = transactional_producer(broker, "fenced")
        producer.begin_transaction()
        producer.produce("r", value=b"a", partition=0)
        producer.produce("r", value=b"b", partition=1)
        producer.flush(TIMEOUT_S)
        # An operator ends the transaction on partition 0 as a coordinator one epoch newer
        # than shoal's (the epoch the next start begins).
        newer = _state_epoch(broker) + 1
        with WireClient(broker.bootstrap_servers) as client:
            described = _producer(client, 0)
            pid, epoch = int(described.producer_id), int(described.producer_epoch)
            assert abort_marker(client, pid, epoch, newer) == ErrorCode.NONE
        producer.commit_transaction(TIMEOUT_S)  # answered: the decision is logged
        assert latest_offset(broker, "r", "read_uncommitted") == 2  # "a", the abort: no commit
        # Partition 1 took the COMMIT marker; partition 0 read nothing ("a" was aborted).
        assert read_all(broker, "r", "read_committed", 1) == [b"b"]
        with WireClient(broker.bootstrap_servers) as client:
            assert _state(client, "fenced") == "PrepareCommit"
            assert int(_producer(client, 0).coordinator_epoch) == newer
        del producer
    with EmbeddedBroker(data, num_partitions=2) as broker:
        assert _state_epoch(broker) == newer
        with WireClient(broker.bootstrap_servers) as client:
            # The start writes the markers again (its timer's first round), now at an epoch
            # the partition takes.
            deadline = time.monotonic() + TIMEOUT_S
            while _state(client, "fenced") == "PrepareCommit" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _state(client, "fenced") == "CompleteCommit"
            assert int(_producer(client, 0).coordinator_epoch) == newer
        assert latest_offset(broker, "r", "read_uncommitted") == 3
