"""Apache Kafka's own admin tools (Java client) against shoal and, for reference, against Apache
Kafka: kafka-log-dirs --describe, kafka-leader-election, kafka-reassign-partitions --list,
kafka-metadata-quorum describe --status/--replication, kafka-features describe and
kafka-transactions describe-producers. Each runs as its Java class from the peer's jars."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.differential.scenarios import create_topic, produce
from tests.differential.tools import ok
from tests.peers.kafka_peer import kafka_tool

pytestmark = pytest.mark.integration

TOOLS = "org.apache.kafka.tools."
LOG_DIRS = TOOLS + "LogDirsCommand"
LEADER_ELECTION = TOOLS + "LeaderElectionCommand"
REASSIGN = TOOLS + "reassign.ReassignPartitionsCommand"
METADATA_QUORUM = TOOLS + "MetadataQuorumCommand"
FEATURES = TOOLS + "FeatureCommand"
TRANSACTIONS = TOOLS + "TransactionsCommand"


def failed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, f"expected a failure\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_log_dirs_describe(target: str) -> None:
    topic = create_topic(target, partitions=2)
    produce(target, topic, [{"value": b"x" * 100, "partition": 1}])
    out = ok(
        kafka_tool(LOG_DIRS, "--bootstrap-server", target, "--describe", "--topic-list", topic)
    )
    described = json.loads(out.strip().splitlines()[-1])
    ((broker, log_dirs),) = [(b["broker"], b["logDirs"]) for b in described["brokers"]]
    (log_dir,) = log_dirs
    assert (broker, log_dir["error"]) == (1, None)
    assert log_dir["logDir"].startswith("/")
    partitions = {p["partition"]: p for p in log_dir["partitions"]}
    assert sorted(partitions) == [f"{topic}-0", f"{topic}-1"]
    assert partitions[f"{topic}-0"]["size"] == 0
    assert partitions[f"{topic}-1"]["size"] > 100
    assert {(p["offsetLag"], p["isFuture"]) for p in partitions.values()} == {(0, False)}


def test_leader_election_is_never_needed(target: str) -> None:
    topic = create_topic(target, partitions=2)
    every = ok(
        kafka_tool(
            LEADER_ELECTION, "--bootstrap-server", target, "--election-type", "preferred",
            "--all-topic-partitions",
        )
    )  # fmt: skip
    # Partitions that needed no election are left out of an all-partitions answer: nothing to say.
    assert every.strip() == ""
    one = ok(
        kafka_tool(
            LEADER_ELECTION, "--bootstrap-server", target, "--election-type", "unclean",
            "--topic", topic, "--partition", "1",
        )
    )  # fmt: skip
    assert one.strip() == f"Valid replica already elected for partitions {topic}-1"
    missing = failed(
        kafka_tool(
            LEADER_ELECTION, "--bootstrap-server", target, "--election-type", "preferred",
            "--topic", f"{topic}-missing", "--partition", "0",
        )
    )  # fmt: skip
    assert "UnknownTopicOrPartitionException" in missing
    assert "1 replica(s) could not be elected" in missing


def test_reassign_partitions_list(target: str) -> None:
    create_topic(target, partitions=1)
    out = ok(kafka_tool(REASSIGN, "--bootstrap-server", target, "--list"))
    assert out.strip() == "No partition reassignments found."


def test_metadata_quorum_describe(target: str) -> None:
    status = ok(kafka_tool(METADATA_QUORUM, "--bootstrap-server", target, "describe", "--status"))
    fields = dict(line.split(":", 1) for line in status.strip().splitlines())
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    assert (fields["LeaderId"], fields["LeaderEpoch"]) == ("1", "1")
    assert int(fields["HighWatermark"]) >= 0
    assert (fields["MaxFollowerLag"], fields["MaxFollowerLagTimeMs"]) == ("0", "0")
    assert fields["CurrentVoters"].startswith('[{"id": 1, "endpoints": ["')
    assert fields["CurrentObservers"] == "[]"
    replication = ok(
        kafka_tool(METADATA_QUORUM, "--bootstrap-server", target, "describe", "--replication")
    )
    header, *rows = [line.split() for line in replication.strip().splitlines()]
    assert header[:4] == ["NodeId", "DirectoryId", "LogEndOffset", "Lag"]
    ((node, _directory, _end, lag, *_times, status_word),) = rows
    assert (node, lag, status_word) == ("1", "0", "Leader")


def test_features_describe(target: str) -> None:
    out = ok(kafka_tool(FEATURES, "--bootstrap-server", target, "describe"))
    lines = {line.split()[1]: line.split() for line in out.strip().splitlines()}
    metadata = lines["metadata.version"]
    assert metadata[metadata.index("FinalizedVersionLevel:") + 1] == "4.4-IV2"
    assert metadata[metadata.index("SupportedMaxVersion:") + 1] == "4.4-IV2"
    # Transactions V2 (issue 14): the level Kafka 4.4 finalizes, from a supported 0-2.
    txn = lines["transaction.version"]
    fields = ("SupportedMinVersion", "SupportedMaxVersion", "FinalizedVersionLevel")
    assert [txn[txn.index(f"{field}:") + 1] for field in fields] == ["0", "2", "2"]


def test_transactions_describe_producers(target: str) -> None:
    topic = create_topic(target, partitions=1)
    records = [
        {"value": b"v", "partition": 0, "timestamp": 1_700_000_000_000 + i} for i in range(3)
    ]
    produce(target, topic, records, **{"enable.idempotence": True, "linger.ms": 100})
    out = ok(
        kafka_tool(
            TRANSACTIONS, "--bootstrap-server", target, "describe-producers", "--topic", topic,
            "--partition", "0",
        )
    )  # fmt: skip
    header, *rows = [line.split() for line in out.strip().splitlines()]
    assert header == [
        "ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence", "LastTimestamp",
        "CurrentTransactionStartOffset",
    ]  # fmt: skip
    ((_producer_id, epoch, coordinator_epoch, last_sequence, last_timestamp, txn_start),) = rows
    assert (epoch, coordinator_epoch, last_sequence) == ("0", "-1", "2")
    assert (last_timestamp, txn_start) == ("1700000000002", "None")
