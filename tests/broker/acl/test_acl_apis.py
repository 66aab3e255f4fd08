"""CreateAcls, DescribeAcls and DeleteAcls through the handlers, the ACLs kept across restarts,
and the listings that must hide what a principal may not Describe."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.broker.acls import BrokerAcls
from shoal.protocol import ApiKey, ErrorCode
from shoal.records import SimpleRecord, build_batch
from shoal.security.acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    PatternType,
    PermissionType,
    ResourceType,
)
from shoal.security.acl_authorizer import AuthorizerConfig
from shoal.security.acl_store import AclStore
from shoal.storage.fs import OsFileSystem
from tests.broker.acl.harness import AclHarness
from tests.broker.acl.matrix import CLIENT_HOST, PRINCIPAL, Acl

ADMIN = "User:admin"
WAIT_S_MAX = 30.0
"""A bound on a hang, not a timing."""
TOPIC_READ = Acl("TOPIC", "orders", "LITERAL", PRINCIPAL, "*", "READ", "ALLOW")


def creation(**changes: Any) -> dict[str, Any]:
    values = {
        "resource_type": 2, "resource_name": "orders", "resource_pattern_type": 3,
        "principal": PRINCIPAL, "host": "*", "operation": 3, "permission_type": 3,
    }  # fmt: skip
    return {**values, **changes}


def match_all(**changes: Any) -> dict[str, Any]:
    values = {
        "resource_type_filter": 1, "resource_name_filter": None, "pattern_type_filter": 1,
        "principal_filter": None, "host_filter": None, "operation": 1, "permission_type": 1,
    }  # fmt: skip
    return {**values, **changes}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[AclHarness]:
    h = AclHarness(tmp_path / "data", AuthorizerConfig(super_users=frozenset({ADMIN})))
    h.start()
    yield h
    h.stop()


def create(h: AclHarness, *creations: dict[str, Any], principal: str = ADMIN) -> list[Any]:
    response = h.call(ApiKey.CREATE_ACLS, 3, {"creations": list(creations)}, principal=principal)
    return list(response.results)


def describe(h: AclHarness, principal: str = ADMIN, **changes: Any) -> Any:
    return h.call(ApiKey.DESCRIBE_ACLS, 3, match_all(**changes), principal=principal)


def described(h: AclHarness) -> set[tuple[str, int, str, int, int]]:
    response = describe(h)
    assert response.error_code == ErrorCode.NONE
    return {
        (
            r.resource_name,
            int(r.pattern_type),
            a.principal,
            int(a.operation),
            int(a.permission_type),
        )
        for r in response.resources
        for a in r.acls
    }


@pytest.mark.parametrize("version", [1, 2, 3])
def test_without_an_authorizer_every_acl_api_answers_security_disabled(
    tmp_path: Path, version: int
) -> None:
    h = AclHarness(tmp_path / "data", None)
    h.start()
    try:
        created = h.call(
            ApiKey.CREATE_ACLS, version, {"creations": [creation()]}, principal=PRINCIPAL
        )
        assert [int(r.error_code) for r in created.results] == [ErrorCode.SECURITY_DISABLED]
        listed = h.call(ApiKey.DESCRIBE_ACLS, version, match_all(), principal=PRINCIPAL)
        assert listed.error_code == ErrorCode.SECURITY_DISABLED
        assert listed.error_message == "No Authorizer is configured on the broker"
        deleted = h.call(
            ApiKey.DELETE_ACLS, version, {"filters": [match_all()]}, principal=PRINCIPAL
        )
        assert [int(r.error_code) for r in deleted.filter_results] == [ErrorCode.SECURITY_DISABLED]
        assert not (tmp_path / "data" / "acls.json").exists()
    finally:
        h.stop()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_create_describe_delete_round_trip(harness: AclHarness, version: int) -> None:
    prefixed = creation(resource_name="ord", resource_pattern_type=4, operation=4)
    results = harness.call(
        ApiKey.CREATE_ACLS, version, {"creations": [creation(), prefixed]}, principal=ADMIN
    ).results
    assert [int(r.error_code) for r in results] == [0, 0]
    assert described(harness) == {("orders", 3, PRINCIPAL, 3, 3), ("ord", 4, PRINCIPAL, 4, 3)}
    # MATCH finds the ACLs that apply to a resource named "orders": both.
    matched = harness.call(
        ApiKey.DESCRIBE_ACLS,
        version,
        match_all(resource_type_filter=2, resource_name_filter="orders", pattern_type_filter=2),
        principal=ADMIN,
    )
    assert {r.resource_name for r in matched.resources} == {"orders", "ord"}
    deleted = harness.call(
        ApiKey.DELETE_ACLS,
        version,
        {"filters": [match_all(pattern_type_filter=4), match_all(operation=7)]},
        principal=ADMIN,
    ).filter_results
    assert [[m.resource_name for m in r.matching_acls] for r in deleted] == [["ord"], []]
    assert described(harness) == {("orders", 3, PRINCIPAL, 3, 3)}


def test_creating_an_acl_twice_keeps_one(harness: AclHarness) -> None:
    assert [int(r.error_code) for r in create(harness, creation(), creation())] == [0, 0]
    assert [int(r.error_code) for r in create(harness, creation())] == [0]
    assert len(described(harness)) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"resource_type": 1}, "Invalid resourceType ANY"),
        ({"resource_type": 99}, "Invalid resourceType UNKNOWN"),
        ({"resource_pattern_type": 2}, "Invalid patternType MATCH"),
        ({"resource_pattern_type": 1}, "Invalid patternType ANY"),
        ({"operation": 1}, "Invalid operation ANY"),
        ({"permission_type": 0}, "Invalid permissionType UNKNOWN"),
        ({"resource_name": ""}, "Invalid empty resource name"),
        ({"resource_type": 4, "resource_name": "other"}, "only valid name for the CLUSTER"),
        ({"principal": "alice"}, "principalType:principalName"),
    ],
)
def test_an_invalid_creation_is_refused_and_the_valid_ones_are_kept(
    harness: AclHarness, changes: dict[str, Any], message: str
) -> None:
    results = create(harness, creation(**changes), creation(resource_name="kept"))
    assert [int(r.error_code) for r in results] == [ErrorCode.INVALID_REQUEST, 0]
    assert message in results[0].error_message
    assert {name for name, *_ in described(harness)} == {"kept"}


def test_a_filter_with_an_unknown_code_deletes_nothing(harness: AclHarness) -> None:
    create(harness, creation())
    response = harness.call(
        ApiKey.DELETE_ACLS, 3, {"filters": [match_all(pattern_type_filter=0)]}, principal=ADMIN
    )
    (result,) = response.filter_results
    assert (result.error_code, result.error_message) == (
        ErrorCode.INVALID_REQUEST,
        "Unknown patternFilter.",
    )
    assert len(described(harness)) == 1


def test_the_acl_apis_need_alter_or_describe_on_the_cluster(harness: AclHarness) -> None:
    assert [int(r.error_code) for r in create(harness, creation(), principal=PRINCIPAL)] == [
        ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    ]
    assert describe(harness, PRINCIPAL).error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    harness.add(Acl("CLUSTER", "kafka-cluster", "LITERAL", PRINCIPAL, "*", "DESCRIBE", "ALLOW"))
    assert describe(harness, PRINCIPAL).error_code == ErrorCode.NONE
    assert [int(r.error_code) for r in create(harness, creation(), principal=PRINCIPAL)] == [
        ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    ]


def test_acls_survive_a_restart_and_are_enforced_after_it(harness: AclHarness) -> None:
    create(harness, creation(), creation(permission_type=2, operation=4))
    harness.restart()
    assert described(harness) == {("orders", 3, PRINCIPAL, 3, 3), ("orders", 3, PRINCIPAL, 4, 2)}
    assert harness.broker is not None and harness.broker.acls is not None
    authorizer = harness.broker.acls.authorizer
    assert authorizer.authorize(
        PRINCIPAL, CLIENT_HOST, AclOperation.READ, ResourceType.TOPIC, "orders"
    )
    assert not authorizer.authorize(
        PRINCIPAL, CLIENT_HOST, AclOperation.WRITE, ResourceType.TOPIC, "orders"
    )


class _FailingRename(OsFileSystem):
    def rename(self, src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")


def test_a_failed_save_changes_nothing(tmp_path: Path) -> None:
    acls = BrokerAcls(_FailingRename(), str(tmp_path), AuthorizerConfig())
    from shoal.security.acl import (
        AclOperation,
        ResourceType,
    )

    binding = AclBinding(
        ResourceType.TOPIC, "orders", PatternType.LITERAL, PRINCIPAL, "*", AclOperation.READ,
        PermissionType.ALLOW,
    )  # fmt: skip
    (outcome,) = acls.create([binding])
    assert outcome.error_code == ErrorCode.KAFKA_STORAGE_ERROR
    assert len(acls.authorizer) == 0


def _topic_read(topic: str) -> AclBinding:
    return AclBinding(
        ResourceType.TOPIC, topic, PatternType.LITERAL, PRINCIPAL, "*", AclOperation.READ,
        PermissionType.ALLOW,
    )  # fmt: skip


class _GatedRename(OsFileSystem):
    """The first save's rename waits at a gate: the change is then on its worker thread."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def rename(self, src: str, dst: str) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(WAIT_S_MAX)
        super().rename(src, dst)


@pytest.mark.parametrize("change", ["create", "delete"])
def test_a_change_whose_caller_is_cancelled_mid_save_still_counts(
    tmp_path: Path, change: str
) -> None:
    """A client that goes away while its change is being saved cancels the request: the save
    finishes on its thread, and the change must count in memory too, or memory and the file
    disagree (a revoked ACL kept granting until restart, then the next change wrote it back)."""
    fs = _GatedRename()
    acls = BrokerAcls(fs, str(tmp_path), AuthorizerConfig())
    first, second = (_topic_read(name) for name in ("orders", "payments"))
    if change == "delete":
        fs.entered.set()  # no gate for the set-up
        acls.create([first])
        fs.entered.clear()

    async def scenario() -> None:
        if change == "create":
            request = asyncio.create_task(acls.create_off_loop([first]))
        else:
            exact = AclBindingFilter(
                resource_type=first.resource_type,
                resource_name=first.resource_name,
                pattern_type=first.pattern_type,
                principal=first.principal,
                host=first.host,
                operation=first.operation,
                permission_type=first.permission_type,
            )
            request = asyncio.create_task(acls.delete_off_loop([exact]))
        assert await asyncio.to_thread(fs.entered.wait, WAIT_S_MAX)
        request.cancel()
        fs.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await request
        # Changes are made one at a time: this one starts once the cancelled one has ended.
        await acls.create_off_loop([second])

    asyncio.run(scenario())
    expected = {first, second} if change == "create" else {second}
    assert set(acls.authorizer) == expected
    assert set(AclStore(OsFileSystem(), str(tmp_path)).load()) == expected


def test_a_damaged_acl_file_stops_the_broker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "acls.json").write_text('{"version": 1, "acls": [{"resource_type": "TOPIK"}]}')
    with pytest.raises(RuntimeError, match=r"acls\.json cannot be used"):
        AclHarness(data).start()


# -- listings hide what may not be described ----------------------------------------------


def test_metadata_of_every_topic_lists_only_those_the_principal_may_describe(
    harness: AclHarness,
) -> None:
    assert harness.broker is not None
    for name in ("orders", "payments", "secret"):
        harness.broker.create_topic(name, 1)
    harness.add(TOPIC_READ, Acl("TOPIC", "pay", "PREFIXED", PRINCIPAL, "*", "WRITE", "ALLOW"))
    for version in (1, 4, 9, 12):
        response = harness.call(ApiKey.METADATA, version, {"topics": None}, principal=PRINCIPAL)
        assert [t.name for t in response.topics] == ["orders", "payments"]
    named = harness.call(
        ApiKey.METADATA,
        12,
        {"topics": [{"name": "secret"}, {"name": "nothere"}]},
        principal=PRINCIPAL,
    )
    # Refused alike, whether it exists or not: the name tells nothing.
    assert [(t.name, int(t.error_code), len(t.partitions)) for t in named.topics] == [
        ("secret", ErrorCode.TOPIC_AUTHORIZATION_FAILED, 0),
        ("nothere", ErrorCode.TOPIC_AUTHORIZATION_FAILED, 0),
    ]


def test_metadata_auto_creates_only_with_create(harness: AclHarness) -> None:
    assert harness.broker is not None
    harness.add(Acl("TOPIC", "new", "PREFIXED", PRINCIPAL, "*", "DESCRIBE", "ALLOW"))
    asked = {"topics": [{"name": "new-1"}], "allow_auto_topic_creation": True}
    (topic,) = harness.call(ApiKey.METADATA, 12, asked, principal=PRINCIPAL).topics
    assert topic.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    assert harness.broker.topics.get("new-1") is None
    harness.add(Acl("CLUSTER", "kafka-cluster", "LITERAL", PRINCIPAL, "*", "CREATE", "ALLOW"))
    (topic,) = harness.call(ApiKey.METADATA, 12, asked, principal=PRINCIPAL).topics
    assert topic.error_code == ErrorCode.NONE
    assert harness.broker.topics.get("new-1") is not None


def test_authorized_operations_come_from_the_acls(harness: AclHarness) -> None:
    assert harness.broker is not None
    harness.broker.create_topic("orders", 1)
    harness.add(
        TOPIC_READ, Acl("CLUSTER", "kafka-cluster", "LITERAL", PRINCIPAL, "*", "ALTER", "ALLOW")
    )
    asked = {
        "topics": [{"name": "orders"}],
        "include_cluster_authorized_operations": True,
        "include_topic_authorized_operations": True,
    }
    response = harness.call(ApiKey.METADATA, 10, asked, principal=PRINCIPAL)
    assert response.topics[0].topic_authorized_operations == (1 << 3) | (1 << 8)  # Read, Describe
    assert response.cluster_authorized_operations == (1 << 7) | (1 << 8)  # Alter, Describe
    cluster = harness.call(
        ApiKey.DESCRIBE_CLUSTER,
        1,
        {"include_cluster_authorized_operations": True},
        principal=PRINCIPAL,
    )
    assert cluster.cluster_authorized_operations == (1 << 7) | (1 << 8)
    nobody = harness.call(
        ApiKey.DESCRIBE_CLUSTER,
        1,
        {"include_cluster_authorized_operations": True},
        principal="User:bob",
    )
    assert nobody.cluster_authorized_operations == 0  # no Describe on the cluster: nothing told
    harness.add(Acl("GROUP", "g", "LITERAL", PRINCIPAL, "*", "READ", "ALLOW"))
    (group,) = harness.call(
        ApiKey.DESCRIBE_GROUPS, 5, {"groups": ["g"], "include_authorized_operations": True},
        principal=PRINCIPAL,
    ).groups  # fmt: skip
    assert group.authorized_operations == (1 << 3) | (1 << 8)


def test_list_groups_shows_only_describable_groups_without_cluster_describe(
    harness: AclHarness,
) -> None:
    harness.add(
        Acl("GROUP", "g", "PREFIXED", PRINCIPAL, "*", "READ", "ALLOW"),
        Acl("GROUP", "*", "LITERAL", ADMIN, "*", "READ", "ALLOW"),
    )
    join = {
        "session_timeout": 10000, "rebalance_timeout": 10000, "member_id": "",
        "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b""}],
    }  # fmt: skip
    for group in ("g1", "h1"):
        harness.call(ApiKey.JOIN_GROUP, 3, {"group_id": group, **join}, principal=ADMIN)
    listed = harness.call(ApiKey.LIST_GROUPS, 4, {}, principal=PRINCIPAL)
    assert [g.group_id for g in listed.groups] == ["g1"]
    harness.add(Acl("CLUSTER", "kafka-cluster", "LITERAL", PRINCIPAL, "*", "DESCRIBE", "ALLOW"))
    listed = harness.call(ApiKey.LIST_GROUPS, 4, {}, principal=PRINCIPAL)
    assert sorted(g.group_id for g in listed.groups) == ["g1", "h1"]


def test_an_unauthorized_produce_writes_nothing_and_a_fetch_fails_only_that_partition(
    harness: AclHarness,
) -> None:
    broker = harness.broker
    assert broker is not None
    broker.create_topic("orders", 1)
    broker.create_topic("open", 1)
    harness.add(
        Acl("TOPIC", "open", "LITERAL", PRINCIPAL, "*", "ALL", "ALLOW"),
        Acl("TOPIC", "orders", "LITERAL", PRINCIPAL, "*", "READ", "ALLOW"),
    )
    batch = build_batch([SimpleRecord(value=b"v")], base_timestamp=1_700_000_000_000)
    produce = {
        "acks": -1, "timeout": 5000,
        "topic_data": [{"name": n, "partition_data": [{"index": 0, "records": batch}]}
                       for n in ("orders", "open")],
    }  # fmt: skip
    response = harness.call(ApiKey.PRODUCE, 9, produce, principal=PRINCIPAL)
    codes = {t.name: int(t.partition_responses[0].error_code) for t in response.responses}
    assert codes == {"orders": ErrorCode.TOPIC_AUTHORIZATION_FAILED, "open": ErrorCode.NONE}
    orders, opened = broker.partition("orders", 0), broker.partition("open", 0)
    assert orders is not None and opened is not None
    assert (orders.log_end_offset, opened.log_end_offset) == (0, 1)
    fetch = {
        "replica_id": -1, "max_wait": 0, "min_bytes": 0, "max_bytes": 1 << 20,
        "topics": [{"topic": n, "partitions": [
            {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}
            for n in ("open", "orders")],
    }  # fmt: skip
    harness.add(Acl("TOPIC", "orders", "LITERAL", PRINCIPAL, "*", "READ", "DENY"))
    fetched = harness.call(ApiKey.FETCH, 12, fetch, principal=PRINCIPAL)
    parts = {t.topic: t.partitions[0] for t in fetched.responses}
    assert parts["orders"].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    assert parts["open"].error_code == ErrorCode.NONE and parts["open"].records


def test_a_scram_change_that_cannot_be_saved_is_answered_per_user_and_changes_nothing(
    harness: AclHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AlterUserScramCredentials whose save fails: each user gets KAFKA_STORAGE_ERROR (the
    connection is not dropped for the client to retry blindly) and no credential counts."""
    assert harness.broker is not None
    store = harness.broker.scram_credentials

    def full_disk(_users: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "_save", full_disk)
    version = store.version
    upsertion = {
        "name": "carol", "mechanism": 1, "iterations": 4096, "salt": b"s" * 16,
        "salted_password": b"p" * 32,
    }  # fmt: skip
    response = harness.call(
        ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0,
        {"deletions": [], "upsertions": [upsertion]}, principal=ADMIN,
    )  # fmt: skip
    [result] = response.results
    assert (result.user, result.error_code) == ("carol", ErrorCode.KAFKA_STORAGE_ERROR)
    assert "No space left on device" in result.error_message
    assert "carol" not in store.users()
    assert store.version == version  # a remembered HTTP password stays valid: nothing changed
