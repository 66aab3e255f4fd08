"""Upgrades never strand data: today's broker opens a data directory an older shoal wrote.

``fixtures/<release>`` was written by that release's code (``python -m
tests.upgrade.make_fixture``, see there for what it holds, including a producer snapshot in
format version 1) and is never regenerated: each later change must still read it. A copy is
opened (the fixture itself stays untouched) and every kind of state is read back through real
clients: records with their keys, headers and codecs, read_committed hiding the aborted
transaction, the group's offsets, the SCRAM credential, the ACL and the registered schema.

A directory stamped with a format version from the future is refused at start, with a message
naming both versions, never misread. (Files that are caches of the log -- checkpoints, producer
snapshots, indexes -- are rebuilt from the log instead when their version is unknown: losing
them costs a replay, not data. The recovery tests cover that.)
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
)

from shoal.coordinator.producer_snapshot import decode_snapshot
from shoal.coordinator.producers import SNAPSHOT_FILE
from shoal.embedded import EmbeddedBroker
from shoal.storage.documents import DocumentDamaged
from shoal.storage.fs import OsFileSystem, read_sealed
from tests.upgrade.make_fixture import (
    AVRO_SCHEMA,
    BROKER_RETENTION_MS,
    BROKER_SETTINGS,
    GROUP,
    SUBJECT,
    TIMEOUT_S,
    TOPIC,
    TXN_TOPIC,
    expected_records,
)

pytestmark = pytest.mark.integration

FIXTURES: Final = Path(__file__).parent / "fixtures"
RELEASES: Final = sorted(p.name for p in FIXTURES.iterdir())


def _opened(release: str, tmp_path: Path) -> Path:
    copy = tmp_path / release
    shutil.copytree(FIXTURES / release, copy)
    return copy


@pytest.fixture(scope="module", params=RELEASES)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedBroker]:
    data = _opened(request.param, tmp_path_factory.mktemp("upgrade"))
    with EmbeddedBroker(str(data), **BROKER_SETTINGS) as started:
        yield started


def _read(
    broker: EmbeddedBroker, topic: str, partitions: int, isolation: str
) -> dict[int, list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"upgrade-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: dict[int, list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]] = {
        p: [] for p in range(partitions)
    }
    ended: set[int] = set()
    try:
        while len(ended) < partitions:
            message = consumer.poll(TIMEOUT_S)
            assert message is not None, f"{topic} did not reach its end: {got}"
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                ended.add(message.partition())
                continue
            got[message.partition()].append(
                (message.key(), message.value(), list(message.headers() or []))
            )
    finally:
        consumer.close()
    return got


def test_records_of_every_codec_are_read_back(broker: EmbeddedBroker) -> None:
    got = _read(broker, TOPIC, 2, "read_uncommitted")
    expected = expected_records()
    assert {p: [(k, v) for k, v, _h in records] for p, records in got.items()} == expected
    codecs_seen = {h[0][1] for records in got.values() for _k, _v, h in records if h}
    assert codecs_seen == {b"none", b"gzip", b"snappy", b"lz4", b"zstd"}


def test_the_aborted_transaction_stays_hidden(broker: EmbeddedBroker) -> None:
    committed = [v for _k, v, _h in _read(broker, TXN_TOPIC, 1, "read_committed")[0]]
    everything = [v for _k, v, _h in _read(broker, TXN_TOPIC, 1, "read_uncommitted")[0]]
    assert committed == [b"committed", b"committed-2"]
    assert everything == [b"committed", b"aborted", b"committed-2"]


def test_group_offsets_credentials_acls_and_configs_are_kept(broker: EmbeddedBroker) -> None:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": GROUP})
    try:
        offsets = consumer.committed(
            [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)], timeout=TIMEOUT_S
        )
    finally:
        consumer.close()
    assert [(tp.partition, tp.offset) for tp in offsets] == [(0, 4), (1, 2)]

    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    scram = admin.describe_user_scram_credentials(["alice"])["alice"].result(TIMEOUT_S)
    assert [(c.mechanism.name, c.iterations) for c in scram.scram_credential_infos] == [
        ("SCRAM_SHA_256", 4096)
    ]
    acl_filter = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    acls = admin.describe_acls(acl_filter).result(TIMEOUT_S)
    assert [(a.name, a.principal, a.operation) for a in acls] == [
        ("secret-", "User:alice", AclOperation.READ)
    ]
    resource = ConfigResource(ResourceType.TOPIC, TOPIC)
    configs = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert configs["retention.ms"].value == "-1"
    node = ConfigResource(ResourceType.BROKER, "1")
    broker_configs = admin.describe_configs([node])[node].result(TIMEOUT_S)
    assert broker_configs["log.retention.ms"].value == BROKER_RETENTION_MS


def test_the_registered_schema_is_served(broker: EmbeddedBroker) -> None:
    response = httpx.get(f"{broker.http_url}/subjects/{SUBJECT}/versions/1", timeout=TIMEOUT_S)
    assert response.status_code == 200, response.text
    assert json.loads(response.json()["schema"]) == json.loads(AVRO_SCHEMA)


DOCUMENTS: Final = [
    (release, path.name)
    for release in RELEASES
    for path in sorted((FIXTURES / release).glob("*.json"))
]
"""Every versioned JSON document each fixture holds (topics, ACLs, SCRAM credentials...)."""


@pytest.mark.parametrize(("release", "document"), DOCUMENTS)
def test_a_document_from_a_newer_format_is_refused_naming_both_versions(
    release: str, document: str, tmp_path: Path
) -> None:
    data = _opened(release, tmp_path)
    path = data / document
    doc = json.loads(path.read_text())
    doc["version"] = 99
    path.write_text(json.dumps(doc))
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(DocumentDamaged, match=r"format version 99 .*newer shoal.*reads version 1"):
        EmbeddedBroker(str(data), **BROKER_SETTINGS).start()
    after = {p: p.read_bytes() for p in data.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before, "refusing the directory changed its files"


@pytest.mark.parametrize("release", RELEASES)
def test_the_format_1_producer_snapshot_is_read_not_rebuilt(release: str) -> None:
    """The fixture's snapshot of partition 1 is in format 1: it must decode (a None would make
    the broker replay the log instead, and the tests above would pass without reading it)."""
    path = str(FIXTURES / release / f"{TOPIC}-1" / SNAPSHOT_FILE)
    payload = read_sealed(OsFileSystem(), path)
    assert payload is not None and payload[4] == 1
    snapshot = decode_snapshot(payload)
    assert snapshot is not None and snapshot.producers
