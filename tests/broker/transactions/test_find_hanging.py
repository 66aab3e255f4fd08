"""A real hanging transaction, found and ended with Kafka's own tool against shoal.

A transaction hangs when a partition holds it open but no coordinator will ever end it. shoal's
coordinator aborts every transaction it knows once its timeout passes, and refuses
transactional writes to partitions not added to a transaction it knows (as Kafka 4.4's
verification does), so a client alone cannot make one. The way it happens in practice is the
one docs/transactions.md names: the coordinator's state is lost. Here a confluent-kafka producer
adds a partition, writes a record stamped 20 minutes ago (so it is older than find-hanging's
default 15-minute --max-transaction-timeout) and never ends the transaction; the broker stops,
its ``__transaction_state`` log is lost, and the broker starts again. The partition still
holds the transaction open (its log says so); the coordinator knows no such producer.

``kafka-transactions find-hanging`` must list it (DescribeProducers, then ListTransactions by
producer id and DescribeTransactions find no coordinator for it), ``abort --start-offset`` end
it (WriteTxnMarkers with the coordinator epoch DescribeProducers reports), and find-hanging then
find nothing while read_committed readers move past it.

Not run against the Kafka peer: making the same hang there means deleting a running peer's
transaction log (the peer is shared by the session)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from shoal.coordinator.txn_log import TXN_STATE_TOPIC
from shoal.embedded import EmbeddedBroker
from tests.broker.transactions.clients import TIMEOUT_S, latest_offset, transactional_producer
from tests.differential.tools import ok
from tests.peers.kafka_peer import kafka_tool

pytestmark = pytest.mark.integration

TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand"
AGE_MS = 20 * 60 * 1000
"""How old the hanging record is: past find-hanging's default 15-minute threshold."""


def _rows(out: str) -> list[dict[str, str]]:
    header, *rows = [line.split() for line in out.strip().splitlines()]
    return [dict(zip(header, row, strict=True)) for row in rows]


def _find_hanging(bootstrap: str) -> list[dict[str, str]]:
    out = ok(
        kafka_tool(
            TRANSACTIONS, "--bootstrap-server", bootstrap, "find-hanging", "--broker-id", "1"
        )
    )
    return _rows(out)


def test_find_hanging_lists_a_transaction_its_coordinator_lost_and_abort_ends_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with EmbeddedBroker(str(data), num_partitions=1) as broker:
        # A long timeout: the coordinator would not abort it before the restart either.
        gone = transactional_producer(broker, "lost", **{"transaction.timeout.ms": 900_000})
        gone.begin_transaction()
        stamped = int(time.time() * 1000) - AGE_MS
        gone.produce("hung", value=b"never ended", partition=0, timestamp=stamped)
        gone.flush(TIMEOUT_S)
        # Known to its coordinator (Ongoing, with the partition): not hanging.
        assert _find_hanging(broker.bootstrap_servers) == []
    lost = data / f"{TXN_STATE_TOPIC}-0"
    assert lost.is_dir()
    shutil.rmtree(lost)
    with EmbeddedBroker(str(data), num_partitions=1) as broker:
        bootstrap = broker.bootstrap_servers
        assert latest_offset(broker, "hung", "read_committed") == 0  # pinned by it
        (hanging,) = _find_hanging(bootstrap)
        assert (hanging["Topic"], hanging["Partition"], hanging["StartOffset"]) == (
            "hung",
            "0",
            "0",
        )
        assert (hanging["ProducerEpoch"], hanging["CoordinatorEpoch"]) == ("0", "-1")
        assert int(hanging["LastTimestamp"]) == stamped
        assert int(hanging["Duration(min)"]) >= 20
        ok(
            kafka_tool(
                TRANSACTIONS, "--bootstrap-server", bootstrap, "abort",
                "--topic", "hung", "--partition", "0", "--start-offset", "0",
            )
        )  # fmt: skip
        assert _find_hanging(bootstrap) == []
        assert latest_offset(broker, "hung", "read_committed") == 2  # the record, the marker
    del gone
