"""Kafka 4.4's Java transactional producer on transactions V2 (KIP-890 part 2), against
Apache Kafka and shoal, which both finalize ``transaction.version`` 2.

``tests/peers/java/TxnV2Check.java`` commits, aborts, commits with a group's offsets, and is
then fenced by a second instance of its transactional id, which commits. Both brokers must
give the same story: the same steps printed (the zombie's fencing error included), the same
records for a read_committed reader (exactly the committed ones), the same committed offset,
and the same final producer epoch, which on V2 counts every transaction's bump (on the classic
protocol it would be 1: one initTransactions per instance). Kafka's own formatter
(TransactionLogMessageFormatter) reads both brokers' ``__transaction_state`` alike."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from shoal.broker.features import TRANSACTION_VERSION
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey
from tests.differential.scenarios import admin, create_topic, unique
from tests.differential.txn_scenarios import read_to_end
from tests.differential.txn_v2_scenarios import _committed
from tests.peers.kafka_apps import compile_java
from tests.peers.kafka_peer import classpath, kafka_tool, tool_jvm_options
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 120.0
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
FORMATTER = "org.apache.kafka.tools.consumer.TransactionLogMessageFormatter"
STEPS = frozenset({"COMMITTED", "ABORTED", "OFFSETS", "FENCED", "NOT", "SUCCESSOR"})
"""The first words of TxnV2Check's step lines."""
FORMATTER_IDLE_MS = 1500
"""The console consumer stops after this long without a record: the log is all there."""


@pytest.fixture(scope="module")
def txn_v2_classpath(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_java("TxnV2Check.java", classpath(), tmp_path_factory.mktemp("txnv2"))


def run_check(cp: str, bootstrap: str, *, state_record: bool = True) -> dict[str, Any]:
    topic, txn_id, group = create_topic(bootstrap), unique("jtv2"), unique("jtv2-group")
    done = subprocess.run(
        ["java", *tool_jvm_options(), "-cp", cp, "TxnV2Check", bootstrap, topic, txn_id, group],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return {
        "steps": done.stdout.split("\n"),
        "read_committed": [v for _, v in read_to_end(bootstrap, topic, "read_committed")],
        "committed_offset": _committed(bootstrap, group, topic),
        "txn_id": txn_id,
        "last_state_record": last_state_record(bootstrap, txn_id) if state_record else None,
    }


def state_partition(txn_id: str, partitions: int) -> int:
    """The ``__transaction_state`` partition of ``txn_id``: Kafka's abs(hashCode) % count."""
    h = 0
    for unit in txn_id.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    signed = h - (1 << 32) if h >= 1 << 31 else h
    return (abs(signed) if signed != -(1 << 31) else 0) % partitions


def last_state_record(bootstrap: str, txn_id: str) -> dict[str, Any]:
    """The last ``__transaction_state`` record of ``txn_id`` as Kafka's own formatter
    (TransactionLogMessageFormatter) prints it, minus what the broker chooses (ids, times)."""
    (topic,) = admin(bootstrap).list_topics("__transaction_state", timeout=10).topics.values()
    partition = state_partition(txn_id, len(topic.partitions))
    out = kafka_tool(
        CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--topic", "__transaction_state",
        "--partition", str(partition), "--offset", "earliest",
        "--timeout-ms", str(FORMATTER_IDLE_MS), "--formatter", FORMATTER,
    ).stdout  # fmt: skip
    decoder, records, pos = json.JSONDecoder(), [], out.find("{")
    while pos >= 0:
        record, end = decoder.raw_decode(out, pos)
        records.append(record)
        pos = out.find("{", end)
    mine = [r for r in records if r["key"]["data"]["transactionalId"] == txn_id]
    assert mine, out[-2000:]
    value = mine[-1]["value"]
    data = dict(value["data"])
    same_id = data.pop("previousProducerId", None) == data.pop("producerId")
    data.pop("transactionLastUpdateTimestampMs")
    # Kept once the transaction completes (DescribeTransactions shows it), as Kafka keeps it.
    start_kept = data.pop("transactionStartTimestampMs") > 0
    return {
        "version": value["version"], "previous_is_current": same_id, "start_kept": start_kept,
        **data,
    }  # fmt: skip


def test_java_producer_on_transactions_v2(
    txn_v2_classpath: str, kafka_peer: Any, shoal_target: Any
) -> None:
    shoal = run_check(txn_v2_classpath, shoal_target.bootstrap_servers)
    assert shoal["read_committed"] == [b"c1", b"c2", b"c3", b"o1", b"s1"]
    assert shoal["committed_offset"] == 7
    assert shoal["steps"][:3] == ["COMMITTED", "ABORTED", "OFFSETS"]
    assert shoal["steps"][3].startswith("FENCED ")
    # Kafka's formatter reads shoal's log: its format is Kafka's, V2 fields included. The
    # epoch: 3 transactions (+3), the successor's init (+1) and its transaction (+1).
    assert shoal["last_state_record"] == {
        "version": 1, "previous_is_current": True, "start_kept": True, "producerEpoch": 5,
        "transactionTimeoutMs": 60000, "transactionStatus": "CompleteCommit",
        "transactionPartitions": [], "clientTransactionVersion": 2,
    }  # fmt: skip
    kafka = run_check(txn_v2_classpath, kafka_peer.bootstrap_servers)
    assert {**kafka, "txn_id": None} == {**shoal, "txn_id": None}


def test_java_producer_keeps_the_classic_protocol_at_transaction_version_1(
    txn_v2_classpath: str, tmp_path: Any
) -> None:
    """With the ``transaction_version`` setting at 1 (Kafka's ``kafka-features downgrade
    --feature transaction.version=1``), the 4.4 Java producer keeps transactions V1: the same
    story, but its transactions end with EndTxn v4 or older (the coordinator records client
    transaction version 0, which it takes from the EndTxn's version) and bump no epoch: only
    each initTransactions does (0, then 1 for the successor)."""
    with EmbeddedBroker(
        str(tmp_path / "data"),
        auto_create_topics=False,
        group_initial_rebalance_delay_ms=0,
        transaction_version=1,
    ) as shoal:
        with WireClient(shoal.bootstrap_servers) as client:
            features = client.request(ApiKey.API_VERSIONS, 4, {})
            finalized = {str(f.name): int(f.max_version_level) for f in features.finalized_features}
            assert finalized[TRANSACTION_VERSION] == 1
            classic = run_check(txn_v2_classpath, shoal.bootstrap_servers, state_record=False)
            described = client.request(
                ApiKey.DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": [classic["txn_id"]]}
            )
        (state,) = described.transaction_states
        served = shoal.app.broker
        assert served is not None
        meta = served.transactions.coordinator.get(classic["txn_id"])
        assert meta is not None
    assert classic["read_committed"] == [b"c1", b"c2", b"c3", b"o1", b"s1"]
    assert classic["committed_offset"] == 7
    # The classic producer's Sender also logs the fencing (to stdout): only the steps count.
    steps = [s for s in classic["steps"] if s.split(" ")[0] in STEPS]
    assert steps == [
        "COMMITTED",
        "ABORTED",
        "OFFSETS",
        "FENCED ProducerFencedException",
        "SUCCESSOR",
    ]
    assert (str(state.transaction_state), int(state.producer_epoch)) == ("CompleteCommit", 1)
    assert meta.client_transaction_version == 0
