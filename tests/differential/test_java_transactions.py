"""Apache Kafka's ``kafka-transactions`` tool (TransactionsCommand) and the Java client's
transactional producer against shoal and, for reference, against Apache Kafka 4.4.

While a confluent-kafka producer holds a transaction open: ``list`` shows the id Ongoing,
``describe`` its state, epoch, timeout and partitions, ``describe-producers`` the open
transaction's start offset and ``find-hanging`` finds nothing hanging (the coordinator knows the
transaction). The Java client's transactional producer (kafka-producer-perf-test with a
transactional id) commits every record."""

from __future__ import annotations

import confluent_kafka as ck
import pytest

from tests.differential.scenarios import TIMEOUT_S, consume, create_topic, unique
from tests.differential.tools import ok
from tests.peers.kafka_peer import kafka_tool

pytestmark = pytest.mark.integration

TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand"
PERF = "org.apache.kafka.tools.ProducerPerformance"


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


def test_kafka_transactions_tool_sees_an_open_transaction(target: str) -> None:
    topic = create_topic(target, partitions=2)
    txn_id = unique("tool-tx")
    producer = ck.Producer(
        {"bootstrap.servers": target, "transactional.id": txn_id, "transaction.timeout.ms": 60_000}
    )
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(topic, value=b"a", partition=1)
    producer.flush(TIMEOUT_S)
    try:
        listed = _rows(ok(kafka_tool(TRANSACTIONS, "--bootstrap-server", target, "list")))
        assert listed[0] == [
            "TransactionalId", "Coordinator", "ProducerId", "TransactionState",
        ]  # fmt: skip
        mine = [row for row in listed[1:] if row[0] == txn_id]
        assert [(row[1], row[3]) for row in mine] == [("1", "Ongoing")]

        described = _rows(
            ok(
                kafka_tool(
                    TRANSACTIONS, "--bootstrap-server", target, "describe",
                    "--transactional-id", txn_id,
                )
            )
        )  # fmt: skip
        header, row = described
        fields = dict(zip(header, row, strict=False))
        assert fields["TransactionalId"] == txn_id
        assert (fields["ProducerEpoch"], fields["TransactionState"]) == ("0", "Ongoing")
        assert fields["TransactionTimeoutMs"] == "60000"
        assert fields["TopicPartitions"] == f"{topic}-1"

        producers = _rows(
            ok(
                kafka_tool(
                    TRANSACTIONS, "--bootstrap-server", target, "describe-producers",
                    "--topic", topic, "--partition", "1",
                )
            )
        )  # fmt: skip
        ((_pid, epoch, _coordinator_epoch, last_sequence, _ts, txn_start),) = producers[1:]
        assert (epoch, last_sequence, txn_start) == ("0", "0", "0")

        hanging = ok(
            kafka_tool(
                TRANSACTIONS, "--bootstrap-server", target, "find-hanging", "--broker-id", "1",
            )
        )  # fmt: skip
        assert hanging.strip().splitlines()[1:] == []
    finally:
        producer.abort_transaction(TIMEOUT_S)
    after = _rows(
        ok(
            kafka_tool(
                TRANSACTIONS, "--bootstrap-server", target, "describe",
                "--transactional-id", txn_id,
            )
        )
    )  # fmt: skip
    assert dict(zip(after[0], after[1], strict=False))["TransactionState"] == "CompleteAbort"


def test_the_java_transactional_producer_commits_every_record(target: str) -> None:
    topic = create_topic(target)
    ok(
        kafka_tool(
            PERF, "--topic", topic, "--num-records", "200", "--record-size", "50",
            "--throughput", "-1", "--transactional-id", unique("java-tx"),
            "--transaction-duration-ms", "50",
            "--command-property", f"bootstrap.servers={target}",
        )
    )  # fmt: skip
    consumer = ck.Consumer(
        {"bootstrap.servers": target, "group.id": unique("c"), "isolation.level": "read_committed"}
    )
    try:
        _low, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, 0), TIMEOUT_S)
    finally:
        consumer.close()
    records = [m for m in consume(target, topic, 200) if "value" in m]
    assert len(records) == 200
    assert high > 200  # the markers of the transactions sit between the records
