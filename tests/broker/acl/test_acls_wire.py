"""ACLs over the wire with real clients: confluent-kafka's AdminClient ACL APIs, ``shoal acl``,
a producer refused by a DENY, and Metadata that never names a topic the client may not see.

Until SASL lands every wire client is ``User:ANONYMOUS``; the broker here makes
``User:admin`` its super user, so ANONYMOUS has exactly the rights the ACLs give it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from shoal.cli import main
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ErrorCode
from shoal.records import SimpleRecord, build_batch
from shoal.security.acl import AclBinding as ShoalBinding
from shoal.security.acl import AclOperation as Op
from shoal.security.acl import PatternType, PermissionType
from shoal.security.acl import ResourceType as Kind
from tests.broker.admin.support import TIMEOUT_S, on_broker, partition_log
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

ANONYMOUS = "User:ANONYMOUS"


def grant(broker: EmbeddedBroker, *bindings: ShoalBinding) -> None:
    """ACLs added on the broker itself, as its super user would."""

    def add(core: Any) -> None:
        assert all(o.error_code == 0 for o in core.acls.create(list(bindings)))

    on_broker(broker, add)


def anonymous(kind: Kind, name: str, op: Op, permission: PermissionType = PermissionType.ALLOW,
              pattern: PatternType = PatternType.LITERAL) -> ShoalBinding:  # fmt: skip
    return ShoalBinding(kind, name, pattern, ANONYMOUS, "*", op, permission)


@pytest.fixture
def secured(shoal_broker_factory: Any) -> EmbeddedBroker:
    broker: EmbeddedBroker = shoal_broker_factory(
        authorizer_class_name="org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        super_users="User:admin",
    )
    # ANONYMOUS may create topics and manage ACLs, and nothing else unless a test grants it.
    grant(broker, anonymous(Kind.CLUSTER, "kafka-cluster", Op.ALTER),
          anonymous(Kind.CLUSTER, "kafka-cluster", Op.DESCRIBE),
          anonymous(Kind.CLUSTER, "kafka-cluster", Op.CREATE))  # fmt: skip
    return broker


def test_admin_client_creates_describes_and_deletes_acls(secured: EmbeddedBroker) -> None:
    admin = AdminClient({"bootstrap.servers": secured.bootstrap_servers})
    acls = [
        AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.GROUP, "bill", ResourcePatternType.PREFIXED, "User:alice", "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, "*", ResourcePatternType.LITERAL, "User:bob", "10.0.0.1",
                   AclOperation.WRITE, AclPermissionType.DENY),
    ]  # fmt: skip
    for future in admin.create_acls(acls, request_timeout=TIMEOUT_S).values():
        assert future.result() is None
    alice = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                             AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    assert set(admin.describe_acls(alice).result(TIMEOUT_S)) == set(acls[:2])
    # MATCH: what applies to topic "orders": its own ACL and the "*" one.
    match = AclBindingFilter(ResourceType.TOPIC, "orders", ResourcePatternType.MATCH, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    assert set(admin.describe_acls(match).result(TIMEOUT_S)) == {acls[0], acls[2]}
    deleted = admin.delete_acls([alice], request_timeout=TIMEOUT_S)[alice].result()
    assert set(deleted) == set(acls[:2])
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    left = set(admin.describe_acls(everything).result(TIMEOUT_S))
    assert acls[2] in left and not left & set(acls[:2])


def test_without_an_authorizer_the_acl_apis_answer_security_disabled(
    shoal_broker: EmbeddedBroker,
) -> None:
    admin = AdminClient({"bootstrap.servers": shoal_broker.bootstrap_servers})
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    acl = AclBinding(ResourceType.TOPIC, "o", ResourcePatternType.LITERAL, "User:a", "*",
                     AclOperation.READ, AclPermissionType.ALLOW)  # fmt: skip
    for future in (
        admin.create_acls([acl])[acl],
        admin.delete_acls([everything])[everything],
    ):
        with pytest.raises(KafkaException) as info:
            future.result(TIMEOUT_S)
        assert info.value.args[0].code() == KafkaError.SECURITY_DISABLED
    # librdkafka reports DescribeAcls' top-level error as an empty list; the wire has it.
    with WireClient(shoal_broker.bootstrap_servers) as client:
        response = client.request(29, 3, {"resource_type_filter": 1, "pattern_type_filter": 1,
                                          "operation": 1, "permission_type": 1})  # fmt: skip
    assert response.error_code == ErrorCode.SECURITY_DISABLED


def test_a_denied_producer_fails_with_topic_authorization_failed_and_writes_nothing(
    secured: EmbeddedBroker,
) -> None:
    admin = AdminClient({"bootstrap.servers": secured.bootstrap_servers})
    admin.create_topics([NewTopic("orders", 1)])["orders"].result(TIMEOUT_S)
    grant(secured, anonymous(Kind.TOPIC, "orders", Op.ALL),
          anonymous(Kind.TOPIC, "orders", Op.WRITE, PermissionType.DENY))  # fmt: skip
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": secured.bootstrap_servers, "message.timeout.ms": 5000,
                         "enable.idempotence": False})  # fmt: skip
    producer.produce("orders", b"v", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(TIMEOUT_S)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    plog = partition_log(secured, "orders", 0)
    assert plog is not None and plog.log_end_offset == 0


def test_an_acks_0_produce_refused_closes_the_connection_and_writes_nothing(
    secured: EmbeddedBroker,
) -> None:
    # Kafka cannot answer an acks=0 Produce, so it closes the connection when a partition
    # failed (KafkaApis.handleProduceRequest); one that succeeded keeps it open.
    admin = AdminClient({"bootstrap.servers": secured.bootstrap_servers})
    for name in ("denied0", "allowed0"):
        admin.create_topics([NewTopic(name, 1)])[name].result(TIMEOUT_S)
    grant(secured, anonymous(Kind.TOPIC, "denied0", Op.DESCRIBE),
          anonymous(Kind.TOPIC, "allowed0", Op.WRITE))  # fmt: skip
    batch = build_batch([SimpleRecord(value=b"v")])
    with WireClient(secured.bootstrap_servers) as client:
        assert client.produce("allowed0", 0, batch, acks=0) is None
        assert client.api_versions().error_code == ErrorCode.NONE  # still open
        client.produce("denied0", 0, batch, acks=0)
        assert client.wait_closed() == b""
    for name, end in (("denied0", 0), ("allowed0", 1)):
        plog = partition_log(secured, name, 0)
        assert plog is not None and plog.log_end_offset == end


def test_an_idempotent_producer_needs_write_somewhere_or_idempotent_write(
    secured: EmbeddedBroker,
) -> None:
    admin = AdminClient({"bootstrap.servers": secured.bootstrap_servers})
    admin.create_topics([NewTopic("events", 1)])["events"].result(TIMEOUT_S)
    grant(secured, anonymous(Kind.TOPIC, "events", Op.WRITE))
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": secured.bootstrap_servers,
                         "message.timeout.ms": 10000, "enable.idempotence": True})  # fmt: skip
    producer.produce("events", b"v", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(TIMEOUT_S)
    assert errors == [None]


def test_metadata_never_names_a_topic_the_client_may_not_describe(secured: EmbeddedBroker) -> None:
    admin = AdminClient({"bootstrap.servers": secured.bootstrap_servers})
    for name in ("visible", "hidden"):
        admin.create_topics([NewTopic(name, 1)])[name].result(TIMEOUT_S)
    grant(secured, anonymous(Kind.TOPIC, "vis", Op.READ, pattern=PatternType.PREFIXED))
    listed = admin.list_topics(timeout=TIMEOUT_S).topics
    assert "visible" in listed and "hidden" not in listed
    with WireClient(secured.bootstrap_servers) as client:
        every = client.metadata(None, auto_create=False)
        assert [t.name for t in every.topics] == ["visible"]
        (hidden,) = client.metadata(["hidden"], auto_create=False).topics
        assert hidden.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED and not hidden.partitions


# -- shoal acl --------------------------------------------------------------------------------


def shoal(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main([*argv, "-b", broker.bootstrap_servers])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out + err


def listed(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str], *argv: str
) -> set[tuple[str, ...]]:
    code, out = shoal(broker, capsys, "acl", "list", "--format", "json", *argv)
    assert code == 0, out
    keys = ("resource_type", "resource_name", "pattern_type", "principal", "host", "operation",
            "permission_type")  # fmt: skip
    return {tuple(row[k] for k in keys) for row in json.loads(out)}


def test_shoal_acl_add_list_remove(
    secured: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = shoal(secured, capsys, "acl", "add", "--allow-principal", "User:alice",
                      "--operation", "Read", "--operation", "describe-configs", "--topic", "orders",
                      "--resource-pattern-type", "prefixed")  # fmt: skip
    assert code == 0, out
    assert "ResourcePattern(resourceType=TOPIC, name=orders, patternType=PREFIXED)" in out
    code, out = shoal(secured, capsys, "acl", "add", "--consumer", "--allow-principal", "User:bob",
                      "--topic", "orders", "--group", "billing")  # fmt: skip
    assert code == 0, out
    code, out = shoal(secured, capsys, "acl", "add", "--producer", "--idempotent",
                      "--allow-principal", "User:carol", "--allow-host", "10.0.0.7",
                      "--topic", "orders", "--transactional-id", "tx")  # fmt: skip
    assert code == 0, out
    bob = listed(secured, capsys, "--principal", "User:bob")
    assert bob == {
        ("TOPIC", "orders", "LITERAL", "User:bob", "*", "READ", "ALLOW"),
        ("TOPIC", "orders", "LITERAL", "User:bob", "*", "DESCRIBE", "ALLOW"),
        ("GROUP", "billing", "LITERAL", "User:bob", "*", "READ", "ALLOW"),
    }
    carol = listed(secured, capsys, "--principal", "User:carol")
    assert (
        "CLUSTER",
        "kafka-cluster",
        "LITERAL",
        "User:carol",
        "10.0.0.7",
        "IDEMPOTENT_WRITE",
        "ALLOW",
    ) in carol
    assert (
        "TRANSACTIONAL_ID",
        "tx",
        "LITERAL",
        "User:carol",
        "10.0.0.7",
        "WRITE",
        "ALLOW",
    ) in carol
    assert (
        len(carol) == 6
    )  # Write, Describe, Create on the topic; Write, Describe on tx; the cluster
    # MATCH lists what applies to topic "orders", the PREFIXED ones included.
    matched = listed(secured, capsys, "--topic", "orders", "--resource-pattern-type", "match")
    assert ("TOPIC", "orders", "PREFIXED", "User:alice", "*", "READ", "ALLOW") in matched
    code, out = shoal(secured, capsys, "acl", "remove", "--force", "--topic", "orders")
    assert code == 0 and "Removed 5 ACLs." in out, out
    assert not any(row[0] == "TOPIC" and row[2] == "LITERAL" for row in listed(secured, capsys))
    code, out = shoal(secured, capsys, "acl", "add", "--allow-principal", "alice", "--topic", "x")
    assert code != 0 and "TYPE:NAME" in out
