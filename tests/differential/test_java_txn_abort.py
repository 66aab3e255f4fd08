"""``kafka-transactions abort`` (WriteTxnMarkers, API 27) against shoal and, for reference,
against Apache Kafka 4.4: an operator ends a transaction its producer left open.

A stale producer epoch is refused (INVALID_PRODUCER_EPOCH) and changes nothing; the producer's
current epoch writes the ABORT marker, after which a read_committed reader moves past the
transaction's records and ``describe-producers`` shows no open transaction. The producer's own
abort afterwards still succeeds (its coordinator writes its markers again)."""

from __future__ import annotations

import confluent_kafka as ck
import pytest

from shoal.embedded import EmbeddedBroker
from tests.differential.scenarios import TIMEOUT_S, create_topic, unique
from tests.differential.tools import ok
from tests.differential.txn_scenarios import read_to_end
from tests.peers.kafka_peer import KafkaPeer, kafka_tool

pytestmark = pytest.mark.integration

TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand"


def _producer(target: str, txn_id: str) -> ck.Producer:
    producer = ck.Producer(
        {"bootstrap.servers": target, "transactional.id": txn_id, "transaction.timeout.ms": 60_000}
    )
    producer.init_transactions(TIMEOUT_S)
    return producer


def _open_transaction(target: str, topic: str) -> dict[str, str]:
    """describe-producers' row of the one producer of ``topic``-0, by column name."""
    out = ok(
        kafka_tool(
            TRANSACTIONS, "--bootstrap-server", target, "describe-producers",
            "--topic", topic, "--partition", "0",
        )
    )  # fmt: skip
    header, *rows = (line.split() for line in out.strip().splitlines())
    (row,) = rows
    return dict(zip(header, row, strict=True))


def _abort(target: str, topic: str, producer_id: str, epoch: int, coordinator_epoch: int) -> str:
    result = kafka_tool(
        TRANSACTIONS, "--bootstrap-server", target, "abort", "--topic", topic,
        "--partition", "0", "--producer-id", producer_id, "--producer-epoch", str(epoch),
        "--coordinator-epoch", str(coordinator_epoch),
    )  # fmt: skip
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


def test_kafka_transactions_abort_ends_an_open_transaction(target: str) -> None:
    topic = create_topic(target, partitions=1)
    txn_id = unique("abort-tx")
    first = _producer(target, txn_id)
    producer = _producer(target, txn_id)  # the second instance: its epoch is above 0
    del first
    producer.begin_transaction()
    producer.produce(topic, value=b"left open", partition=0)
    producer.flush(TIMEOUT_S)
    try:
        before = _open_transaction(target, topic)
        assert before["CurrentTransactionStartOffset"] == "0", before
        epoch = int(before["ProducerEpoch"])
        assert epoch >= 1, before
        coordinator_epoch = max(0, int(before["LatestCoordinatorEpoch"]))
        pid = before["ProducerId"]

        stale = _abort(target, topic, pid, epoch - 1, coordinator_epoch)
        assert not stale.startswith("exit 0"), stale
        assert "failed due an invalid producer epoch" in stale, stale
        assert _open_transaction(target, topic)["CurrentTransactionStartOffset"] == "0"

        done = _abort(target, topic, pid, epoch, coordinator_epoch)
        assert done.startswith("exit 0"), done
        after = _open_transaction(target, topic)
        assert after["CurrentTransactionStartOffset"] == "None", after
        assert read_to_end(target, topic, "read_committed") == []
    finally:
        producer.abort_transaction(TIMEOUT_S)


def _force_terminate(target: str, txn_id: str) -> dict[str, object]:
    """A producer leaves a transaction open; ``kafka-transactions forceTerminateTransaction``
    ends it. What the tool, ``describe`` and the producer then see (nothing broker-chosen)."""
    topic = create_topic(target, partitions=1)
    producer = _producer(target, txn_id)
    producer.begin_transaction()
    producer.produce(topic, value=b"left open", partition=0)
    producer.flush(TIMEOUT_S)
    done = kafka_tool(
        TRANSACTIONS, "--bootstrap-server", target, "forceTerminateTransaction",
        "--transactionalId", txn_id,
    )  # fmt: skip
    described = ok(
        kafka_tool(
            TRANSACTIONS, "--bootstrap-server", target, "describe", "--transactional-id", txn_id
        )
    )
    # Tab-separated, each column padded; the last one (TopicPartitions) may be empty.
    header, row = (line.split("\t") for line in described.splitlines() if line.strip())
    state = {k.strip(): v.strip() for k, v in zip(header, row, strict=True)}
    try:
        producer.commit_transaction(TIMEOUT_S)
        commit = "committed"
    except ck.KafkaException as exc:
        error = exc.args[0]
        commit = f"fatal={error.fatal()} fenced={error.code() == ck.KafkaError._FENCED}"
    return {
        "exit": done.returncode,
        "state": state["TransactionState"],
        "epoch": state["ProducerEpoch"],
        "partitions": state["TopicPartitions"],
        "open": _open_transaction(target, topic)["CurrentTransactionStartOffset"],
        "read_committed": read_to_end(target, topic, "read_committed"),
        "log_end": _log_end(target, topic),
        "commit": commit,
    }


def _log_end(target: str, topic: str) -> int:
    consumer = ck.Consumer({"bootstrap.servers": target, "group.id": unique("ft")})
    try:
        return int(consumer.get_watermark_offsets(ck.TopicPartition(topic, 0), TIMEOUT_S)[1])
    finally:
        consumer.close()


def test_kafka_transactions_force_terminate_aborts_an_open_transaction(
    shoal_target: EmbeddedBroker, kafka_peer: KafkaPeer
) -> None:
    """Kafka 4.4's ``forceTerminateTransaction`` (KIP-939's tool; Admin.forceTerminate-
    Transaction) fences the transactional id: InitProducerId v0-5 with no producer id (v6,
    two-phase commit, is an unstable version Kafka 4.4 does not serve by default, nor does
    shoal), which aborts the open transaction with a bumped epoch and is retried until the
    abort is complete. The producer is fenced; its record is aborted."""
    shoal = _force_terminate(shoal_target.bootstrap_servers, unique("ft"))
    assert shoal == {
        "exit": 0, "state": "Empty", "epoch": "2", "partitions": "", "open": "None",
        "read_committed": [], "log_end": 2, "commit": "fatal=True fenced=True",
    }  # fmt: skip
    assert _force_terminate(kafka_peer.bootstrap_servers, unique("ft")) == shoal
