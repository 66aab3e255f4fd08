"""Write a data directory with today's shoal, for the upgrade test of every later release.

``python -m tests.upgrade.make_fixture DIR`` starts an embedded broker on DIR and leaves in it
one of everything a broker keeps on disk: a topic with a config override and records in every
codec (keys, headers, nulls), an idempotent producer's batches (producer snapshots), a committed
and an aborted transaction (transaction log, markers, aborted ranges), a consumer group's
committed offsets, a SCRAM credential, an ACL, a dynamic broker config and a registered
schema. It then stops the broker cleanly and rewrites one producer snapshot in format
version 1 (the pre-transactions layout, still read), so the fixture carries an old format too.

The committed fixture (tests/upgrade/fixtures/<release>) is made once per release and never
regenerated: it is what an older shoal left behind.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Final

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from shoal.coordinator import producers
from shoal.coordinator.producers import SNAPSHOT_FILE
from shoal.embedded import EmbeddedBroker
from shoal.storage.fs import OsFileSystem, read_sealed, sealed, write_atomically

TIMEOUT_S: Final = 30.0
TOPIC: Final = "upgrade"
TXN_TOPIC: Final = "upgrade-txn"
GROUP: Final = "upgrade-group"
SUBJECT: Final = "upgrade-value"
AVRO_SCHEMA: Final = '{"type": "record", "name": "U", "fields": [{"name": "n", "type": "long"}]}'
KAFKA_AUTHORIZER: Final = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
BROKER_SETTINGS: Final = {
    "authorizer_class_name": KAFKA_AUTHORIZER,
    "allow_everyone_if_no_acl_found": True,
}
"""The ACL store is only used with an authorizer; everyone may do what no ACL covers."""
BROKER_RETENTION_MS: Final = "604800001"
"""A dynamic broker config (broker-configs.json): a week and a millisecond."""
CODECS: Final = ("none", "gzip", "snappy", "lz4", "zstd")


def expected_records() -> dict[int, list[tuple[bytes | None, bytes | None]]]:
    """What TOPIC holds per partition, in offset order: (key, value)."""
    records: dict[int, list[tuple[bytes | None, bytes | None]]] = {0: [], 1: []}
    for n, codec in enumerate(CODECS):
        for i in range(3):
            records[n % 2].append((f"{codec}-{i}".encode(), f"value {codec} {i}".encode()))
    records[0].append((None, None))
    return records


def _admin(broker: EmbeddedBroker) -> AdminClient:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    topics = [
        NewTopic(TOPIC, 2, 1, config={"retention.ms": "-1", "cleanup.policy": "delete"}),
        NewTopic(TXN_TOPIC, 1, 1),
    ]
    for future in admin.create_topics(topics, operation_timeout=TIMEOUT_S).values():
        future.result(TIMEOUT_S)
    credential = UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"alice-secret"
    )
    for future in admin.alter_user_scram_credentials([credential]).values():
        future.result(TIMEOUT_S)
    acl = AclBinding(
        ResourceType.TOPIC,
        "secret-",
        ResourcePatternType.PREFIXED,
        "User:alice",
        "*",
        AclOperation.READ,
        AclPermissionType.ALLOW,
    )
    for future in admin.create_acls([acl]).values():
        future.result(TIMEOUT_S)
    retention = ConfigEntry(
        "log.retention.ms", BROKER_RETENTION_MS, incremental_operation=AlterConfigOpType.SET
    )
    broker_config = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[retention])
    for future in admin.incremental_alter_configs([broker_config]).values():
        future.result(TIMEOUT_S)
    return admin


def _produce(broker: EmbeddedBroker) -> None:
    expected = expected_records()
    for n, codec in enumerate(CODECS):
        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "enable.idempotence": True,
                "compression.type": codec,
                "linger.ms": 50,
            }
        )
        for key, value in expected[n % 2][(n // 2) * 3 : (n // 2) * 3 + 3]:
            producer.produce(TOPIC, key=key, value=value, partition=n % 2, headers={"h": codec})
        assert producer.flush(TIMEOUT_S) == 0
    tail = Producer({"bootstrap.servers": broker.bootstrap_servers, "enable.idempotence": True})
    tail.produce(TOPIC, key=None, value=None, partition=0)
    assert tail.flush(TIMEOUT_S) == 0


def _transactions(broker: EmbeddedBroker) -> None:
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "transactional.id": "upgrade-txn"}
    )
    producer.init_transactions(TIMEOUT_S)
    for outcome in ("committed", "aborted", "committed-2"):
        producer.begin_transaction()
        producer.produce(TXN_TOPIC, value=outcome.encode())
        assert producer.flush(TIMEOUT_S) == 0
        if outcome == "aborted":
            producer.abort_transaction(TIMEOUT_S)
        else:
            producer.commit_transaction(TIMEOUT_S)


def _group(broker: EmbeddedBroker) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": GROUP,
            "enable.auto.commit": False,
        }
    )
    consumer.commit(
        offsets=[TopicPartition(TOPIC, 0, 4), TopicPartition(TOPIC, 1, 2)], asynchronous=False
    )
    consumer.close()


def _schema(broker: EmbeddedBroker) -> None:
    response = httpx.post(
        f"{broker.http_url}/subjects/{SUBJECT}/versions",
        json={"schema": AVRO_SCHEMA},
        timeout=TIMEOUT_S,
    )
    response.raise_for_status()


def _snapshot_to_version_1(partition_dir: Path) -> None:
    """Rewrite a partition's producer snapshot (format 2, no transactions in it) as format 1:
    version byte 1 and no transaction section (two zero counts), the layout before issue 14."""
    path = str(partition_dir / SNAPSHOT_FILE)
    payload = read_sealed(OsFileSystem(), path)
    assert payload is not None and payload[4] == 2, f"no version 2 snapshot in {path}"
    assert payload.endswith(bytes(8)), "this partition's snapshot holds transactions"
    write_atomically(OsFileSystem(), path, sealed(payload[:4] + b"\x01" + payload[5:-8]))


def make(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    # A snapshot after every batch (the default waits for many), so the fixture holds some.
    defaults = producers.Producers.__init__.__kwdefaults__
    defaults["snapshot_interval_batches"] = 1
    with EmbeddedBroker(str(directory), **BROKER_SETTINGS) as broker:
        _admin(broker)
        _produce(broker)
        _transactions(broker)
        _group(broker)
        _schema(broker)
    _snapshot_to_version_1(directory / f"{TOPIC}-1")


if __name__ == "__main__":
    make(Path(sys.argv[1]))
