"""Kafka's ``kafka-acls.sh`` (org.apache.kafka.tools.AclCommand, Java admin client) against shoal
with an authorizer and, for reference, against Apache Kafka 4.4 with StandardAuthorizer: add
with --producer/--consumer, list, remove; the same ACLs come back from both.

Both brokers make ``User:ANONYMOUS`` (every PLAINTEXT client) a super user, so the tool may
manage ACLs; what the ACLs then allow is the matrix's business (tests/broker/acl)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from shoal.embedded import EmbeddedBroker
from tests.differential.scenarios import unique
from tests.differential.tools import ok
from tests.peers.kafka_peer import KafkaPeer, kafka_tool

pytestmark = pytest.mark.integration

ACLS = "org.apache.kafka.tools.AclCommand"
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaPeer]:
    overrides = {"authorizer.class.name": STANDARD_AUTHORIZER, "super.users": "User:ANONYMOUS"}
    with KafkaPeer(tmp_path_factory.mktemp("kafka-acl-peer"), **overrides) as peer:
        yield peer


@pytest.fixture(scope="module")
def secured_shoal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(
        str(tmp_path_factory.mktemp("shoal-acl")),
        authorizer_class_name=STANDARD_AUTHORIZER,
        super_users="User:ANONYMOUS",
    ) as broker:
        yield broker


@pytest.fixture(params=["kafka", "shoal"])
def target(request: pytest.FixtureRequest) -> str:
    if request.param == "kafka":
        peer: KafkaPeer = request.getfixturevalue("secured_kafka")
        return peer.bootstrap_servers
    broker: EmbeddedBroker = request.getfixturevalue("secured_shoal")
    return broker.bootstrap_servers


_ENTRY = re.compile(
    r"\(principal=(?P<principal>[^,]+), host=(?P<host>[^,]+), "
    r"operation=(?P<operation>[A-Z_]+), permissionType=(?P<permission>[A-Z]+)\)"
)
_RESOURCE = re.compile(
    r"ResourcePattern\(resourceType=(?P<type>[A-Z_]+), name=(?P<name>[^,]+), "
    r"patternType=(?P<pattern>[A-Z]+)\)"
)


def parsed(listing: str) -> set[tuple[str, ...]]:
    """(type, name, pattern, principal, host, operation, permission) of every listed ACL."""
    found: set[tuple[str, ...]] = set()
    resource: tuple[str, ...] = ()
    for line in listing.splitlines():
        if (r := _RESOURCE.search(line)) is not None:
            resource = (r["type"], r["name"], r["pattern"])
        elif (e := _ENTRY.search(line)) is not None:
            found.add((*resource, e["principal"], e["host"], e["operation"], e["permission"]))
    return found


def acls(target: str, *args: str) -> str:
    return ok(kafka_tool(ACLS, "--bootstrap-server", target, *args))


def test_kafka_acls_add_list_remove(target: str) -> None:
    topic, group, txn = unique("acl-topic"), unique("acl-group"), unique("acl-txn")
    acls(target, "--add", "--producer", "--idempotent", "--allow-principal", "User:alice",
         "--topic", topic, "--transactional-id", txn)  # fmt: skip
    acls(target, "--add", "--consumer", "--allow-principal", "User:bob", "--allow-host",
         "10.0.0.7", "--topic", topic, "--group", group)  # fmt: skip
    acls(target, "--add", "--deny-principal", "User:mallory", "--operation", "Write",
         "--operation", "DescribeConfigs", "--topic", topic[:6],
         "--resource-pattern-type", "prefixed")  # fmt: skip
    listed = parsed(acls(target, "--list", "--topic", topic))
    assert listed == {
        ("TOPIC", topic, "LITERAL", "User:alice", "*", op, "ALLOW")
        for op in ("WRITE", "DESCRIBE", "CREATE")
    } | {
        ("TOPIC", topic, "LITERAL", "User:bob", "10.0.0.7", op, "ALLOW")
        for op in ("READ", "DESCRIBE")
    }
    matched = parsed(acls(target, "--list", "--topic", topic, "--resource-pattern-type", "match"))
    assert listed < matched
    assert ("TOPIC", topic[:6], "PREFIXED", "User:mallory", "*", "WRITE", "DENY") in matched
    everything = parsed(acls(target, "--list"))
    assert ("TRANSACTIONAL_ID", txn, "LITERAL", "User:alice", "*", "WRITE", "ALLOW") in everything
    assert ("CLUSTER", "kafka-cluster", "LITERAL", "User:alice", "*", "IDEMPOTENT_WRITE",
            "ALLOW") in everything  # fmt: skip
    assert ("GROUP", group, "LITERAL", "User:bob", "10.0.0.7", "READ", "ALLOW") in everything
    acls(target, "--remove", "--force", "--topic", topic)
    assert parsed(acls(target, "--list", "--topic", topic)) == set()
    acls(target, "--remove", "--force", "--allow-principal", "User:bob", "--allow-host",
         "10.0.0.7", "--operation", "Read", "--group", group)  # fmt: skip
    assert parsed(acls(target, "--list", "--group", group)) == set()
