"""``shoal txn list|describe|abort`` against a broker with real transactional producers
(confluent-kafka): one transaction committed, one left open."""

from __future__ import annotations

import json

import pytest

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

    # shoal serves no WriteTxnMarkers: abort says so and changes nothing.
    aborted = cli("txn", "abort", "--topic", "txn-cli", "--partition", "1")
    assert aborted.code == 1 and "WriteTxnMarkers (API 27)" in aborted.err
    assert json.loads(cli("txn", "describe", "cli-open", "--format", "json").out)["state"] == (
        "Ongoing"
    )
    hanging.commit_transaction(TIMEOUT_S)

    unreachable = cli("txn", "describe", "x", "-b", f"127.0.0.1:{closed_port()}")
    assert unreachable.code == 1 and "could not ask the coordinator" in unreachable.err
    tls = cli("txn", "list", "-X", "security.protocol=SSL")
    assert tls.code == 1 and "PLAINTEXT" in tls.err
