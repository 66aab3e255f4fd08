"""Apache Kafka's ``kafka-transactions`` tool (TransactionsCommand) and the Java client's
transactional producer against shoal and, for reference, against Apache Kafka 4.4.

While a confluent-kafka producer holds a transaction open: ``list`` shows the id Ongoing,
``describe`` its state, epoch, timeout and partitions, ``describe-producers`` the open
transaction's start offset and ``find-hanging`` finds nothing hanging (the coordinator knows the
transaction). The Java client's transactional producer (kafka-producer-perf-test with a
transactional id) commits every record, and Kafka's TransactionalMessageCopier copies a topic
exactly once through random aborts (shoal only: its outcome is fixed by its input)."""

from __future__ import annotations

import confluent_kafka as ck
import pytest

from shoal.embedded import EmbeddedBroker
from tests.differential.scenarios import TIMEOUT_S, consume, create_topic, produce, unique
from tests.differential.tools import ok
from tests.differential.txn_scenarios import read_to_end
from tests.peers.kafka_peer import kafka_tool

pytestmark = pytest.mark.integration

TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand"
PERF = "org.apache.kafka.tools.ProducerPerformance"
COPIER = "org.apache.kafka.tools.TransactionalMessageCopier"
COPIED = 300


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
        # With no age threshold the open transaction is a candidate, and the tool asks the
        # coordinator (ListTransactions by producer id, DescribeTransactions), which lists
        # the partition: still not hanging. (A real hang: tests/broker/transactions/
        # test_find_hanging.py.)
        hanging = ok(
            kafka_tool(
                TRANSACTIONS, "--bootstrap-server", target, "find-hanging",
                "--topic", topic, "--max-transaction-timeout", "0",
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


def test_the_java_transactional_producer_commits_every_record(
    shoal_target: EmbeddedBroker,
) -> None:
    target = shoal_target.bootstrap_servers
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


def test_transactional_message_copier_copies_exactly_once(shoal_target: EmbeddedBroker) -> None:
    """Kafka's TransactionalMessageCopier (kafka-tools jar), with random aborts: each
    transaction copies records and commits the consumed offsets with them; an aborted one is
    redone from the committed offsets. The output must hold every input once, in order."""
    target = shoal_target.bootstrap_servers
    source, sink = create_topic(target), create_topic(target)
    produce(target, source, [{"value": f"{i}".encode(), "partition": 0} for i in range(COPIED)])
    group = unique("copier")
    ok(
        kafka_tool(
            COPIER, "--broker-list", target, "--input-topic", source, "--input-partition", "0",
            "--output-topic", sink, "--transactional-id", unique("copier-tx"),
            "--consumer-group", group, "--transaction-size", "40", "--enable-random-aborts",
            "--use-group-metadata",
        )
    )  # fmt: skip
    copied = read_to_end(target, sink, "read_committed")
    assert [value for _offset, value in copied] == [f"{i}".encode() for i in range(COPIED)]
    consumer = ck.Consumer({"bootstrap.servers": target, "group.id": group})
    try:
        (committed,) = consumer.committed([ck.TopicPartition(source, 0)], TIMEOUT_S)
    finally:
        consumer.close()
    assert committed.offset == COPIED
