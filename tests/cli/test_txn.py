"""``shoal txn list|describe|abort`` against a broker with real transactional producers
(confluent-kafka): one transaction committed, one left open."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Consumer, TopicPartition

from shoal.embedded import EmbeddedBroker
from tests.broker.transactions.clients import TIMEOUT_S, transactional_producer
from tests.cli.support import Cli, closed_port

pytestmark = pytest.mark.integration


def test_txn_list_describe_and_abort(broker: EmbeddedBroker, cli: Cli) -> None:
    done = transactional_producer(broker, "cli-done")
    done.begin_transaction()
    done.produce("txn-cli", value=b"v", partition=0)
    done.commit_transaction(TIMEOUT_S)
    hanging = transactional_producer(broker, "cli-open")
    hanging.begin_transaction()
    hanging.produce("txn-cli", value=b"v", partition=1)
    hanging.flush(TIMEOUT_S)

    listed = cli("txn", "list")
    assert listed.code == 0, listed.err
    lines = listed.out.splitlines()
    assert lines[0] == "TransactionalId\tCoordinator\tProducerId\tTransactionState"
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert rows["cli-done"][3] == "CompleteCommit" and rows["cli-open"][3] == "Ongoing"
    assert rows["cli-done"][1] == rows["cli-open"][1] == "1"  # the one node
    assert int(rows["cli-open"][2]) >= 0
    only_open = json.loads(cli("txn", "list", "--state", "Ongoing", "--format", "json").out)
    assert [r["transactional_id"] for r in only_open] == ["cli-open"]
    by_pid = cli("txn", "list", "--producer-id", rows["cli-done"][2], "--format", "json")
    assert [r["transactional_id"] for r in json.loads(by_pid.out)] == ["cli-done"]

    described = cli("txn", "describe", "cli-open", "--format", "json")
    assert described.code == 0, described.err
    doc = json.loads(described.out)
    assert doc["state"] == "Ongoing" and doc["topic_partitions"] == ["txn-cli-1"]
    assert doc["producer_id"] == int(rows["cli-open"][2])
    assert doc["current_transaction_start_time_ms"] > 0
    text = cli("txn", "describe", "cli-done")
    assert text.code == 0 and text.out.splitlines()[1].split("\t")[4] == "CompleteCommit"
    missing = cli("txn", "describe", "no-such-id")
    assert missing.code == 1 and "'no-such-id' not found" in missing.err

    # abort writes the ABORT marker (WriteTxnMarkers) for the open transaction's producer: the
    # partition's read_committed end moves past it; the producer's own commit then ends nothing.
    pid = rows["cli-open"][2]
    ids = ("--producer-id", pid, "--producer-epoch", "0", "--coordinator-epoch", "0")
    missing_partition = cli("txn", "abort", "--topic", "txn-cli", "--partition", "9", *ids)
    assert missing_partition.code == 1 and "txn-cli-9 does not exist" in missing_partition.err
    assert _committed_end(broker, 1) == 0  # held at the open transaction's first record
    where = ("--topic", "txn-cli", "--partition", "1")
    both = cli("txn", "abort", *where, "--start-offset", "0", "--producer-id", pid)
    assert both.code == 1 and "either --start-offset or all of" in both.err
    nothing_there = cli("txn", "abort", *where, "--start-offset", "5")
    assert nothing_there.code == 1 and "no transaction is open at offset 5" in nothing_there.err
    # --start-offset finds the producer (DescribeProducers) as kafka-transactions does
    aborted = cli("txn", "abort", *where, "--start-offset", "0")
    assert aborted.code == 0, aborted.err
    assert f"producer {pid} on txn-cli-1" in aborted.out
    assert _committed_end(broker, 1) == 2  # the record and the marker
    hanging.commit_transaction(TIMEOUT_S)

    unreachable = cli("txn", "describe", "x", "-b", f"127.0.0.1:{closed_port()}")
    assert unreachable.code == 1 and "could not ask the coordinator" in unreachable.err
    tls = cli("txn", "list", "-X", "security.protocol=SSL")
    assert tls.code == 1 and "PLAINTEXT" in tls.err


def _committed_end(broker: EmbeddedBroker, partition: int) -> int:
    """The end a read_committed consumer sees on txn-cli (its last stable offset)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": "cli-lso",
            "isolation.level": "read_committed",
        }
    )
    try:
        low_high = consumer.get_watermark_offsets(TopicPartition("txn-cli", partition), TIMEOUT_S)
        return int(low_high[1])
    finally:
        consumer.close()
