"""The ACL matrix (tests/broker/acl/matrix.py) against Apache Kafka 4.4 with StandardAuthorizer,
and differentially against shoal: for every variant, the authorization errors Kafka answers are
the documented ones and the ones shoal answers.

Kafka gets a SASL_PLAINTEXT listener with PLAIN users, so the matrix's principal ``User:alice``
is who it is on both brokers (shoal's side runs in-process with that principal until its SASL
lands; then the same rows can run over its wire too). ``User:ANONYMOUS`` (the PLAINTEXT and
controller listeners) is Kafka's super user: it creates the topic and the ACLs of each variant.

One Kafka serves every variant, so each variant's resource names are made unique, its ACLs are
the only ones present when it runs, and the runner waits until Kafka's authorizer has them
(ACL changes reach the broker's authorizer through the metadata log, a moment after the
controller accepts them). One in-process shoal likewise serves every variant, its ACL set
replaced by each. To keep 800 variants within CI's time, the peer's topics are created fifty
at a time and its ACL set is changed by difference (see :class:`PeerAcls`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
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

from shoal.protocol import ApiKey, ErrorCode
from shoal.security.acl_authorizer import AuthorizerConfig
from tests.broker.acl.harness import AclHarness, run_setup, with_batch, with_topic_ids
from tests.broker.acl.matrix import (
    AUTHORIZATION_ERRORS,
    PRINCIPAL,
    SUPER_USER,
    VARIANTS,
    Acl,
    Variant,
    find_code,
    read_code,
    renamed,
    variants,
)
from tests.peers.kafka_peer import KafkaPeer, free_port
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

ALICE_PASSWORD: Final = "alice-secret"
PROPAGATION_S_MAX: Final = 15.0
"""How long Kafka's authorizer may take to see an ACL change; generous for a loaded machine."""
STANDARD_AUTHORIZER: Final = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_names = itertools.count()


class SaslKafka(KafkaPeer):
    """A Kafka peer with a second listener, SASL_PLAINTEXT with PLAIN users."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.sasl_port = free_port()
        self.overrides = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:"
            f"{self.sasl_port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'user_alice="{ALICE_PASSWORD}";'
            ),
            "authorizer.class.name": STANDARD_AUTHORIZER,
            "super.users": "User:ANONYMOUS",
            "auto.create.topics.enable": "true",
        }


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslKafka]:
    with SaslKafka(tmp_path_factory.mktemp("kafka-sasl-peer")) as peer:
        yield peer


@pytest.fixture(scope="module")
def alice(kafka: SaslKafka) -> Iterator[WireClient]:
    """One connection authenticated as User:alice (SaslHandshake v1, SaslAuthenticate v2)."""
    with WireClient(f"127.0.0.1:{kafka.sasl_port}") as client:
        handshake = client.request(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
        assert handshake.error_code == ErrorCode.NONE, handshake
        token = b"\0alice\0" + ALICE_PASSWORD.encode()
        done = client.request(ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": token})
        assert done.error_code == ErrorCode.NONE, done
        yield client


@pytest.fixture(scope="module")
def superuser(kafka: SaslKafka) -> Iterator[WireClient]:
    """A PLAINTEXT connection (User:ANONYMOUS, the super user), once the group coordinator is
    ready: Kafka answers NOT_COORDINATOR until its offsets topic exists."""
    with WireClient(kafka.bootstrap_servers) as client:
        deadline = time.monotonic() + PROPAGATION_S_MAX * 4
        while True:
            found = client.request(ApiKey.FIND_COORDINATOR, 3, {"key": "probe", "key_type": 0})
            fetched = client.request(ApiKey.OFFSET_FETCH, 7, {"group_id": "probe", "topics": None})
            if found.error_code == ErrorCode.NONE and fetched.error_code == ErrorCode.NONE:
                break
            assert time.monotonic() < deadline, (found, fetched)
            time.sleep(0.2)
        yield client


@pytest.fixture(scope="module")
def admin(kafka: SaslKafka) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka.bootstrap_servers, "log_level": 0})


_EVERYTHING: Final = AclBindingFilter(
    ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
    AclPermissionType.ANY,
)  # fmt: skip


def _client_binding(acl: Acl) -> AclBinding:
    kind = (
        ResourceType.BROKER if acl.resource_type == "CLUSTER" else ResourceType[acl.resource_type]
    )
    return AclBinding(
        kind, acl.name, ResourcePatternType[acl.pattern_type], acl.principal, acl.host,
        AclOperation[acl.operation], AclPermissionType[acl.permission],
    )  # fmt: skip


class PeerAcls:
    """The Kafka peer's ACL set, changed by difference: each variant's ACLs are the only ones
    present when it runs (the whole set is read back until it is exactly those), without
    deleting and recreating every time.

    The ACLs to remove and those to add are disjoint and each removal's filter matches one
    binding exactly, so the two requests go out together and may apply in either order. A
    set not known (at first, or after a test that wrote ACLs another way) is emptied first.
    """

    def __init__(self, admin: AdminClient) -> None:
        self.admin = admin
        self.present: set[AclBinding] | None = None

    def forget(self) -> None:
        """The set may have changed behind this object's back: empty it at the next change."""
        self.present = None

    def only(self, acls: tuple[Acl, ...]) -> None:
        """Make ``acls`` the whole ACL set of the peer, and wait until its authorizer has it."""
        admin = self.admin
        if self.present is None:
            for future in admin.delete_acls([_EVERYTHING]).values():
                future.result(PROPAGATION_S_MAX)
            self.present = set()
        wanted = {_client_binding(a) for a in acls}
        stale, new = self.present - wanted, wanted - self.present
        self.present = None  # unknown until the change is seen whole
        futures = []
        if stale:
            futures += admin.delete_acls([_exactly(b) for b in stale]).values()
        if new:
            futures += admin.create_acls(list(new)).values()
        for future in futures:
            future.result(PROPAGATION_S_MAX)
        deadline = time.monotonic() + PROPAGATION_S_MAX
        while set(admin.describe_acls(_EVERYTHING).result(PROPAGATION_S_MAX)) != wanted:
            assert time.monotonic() < deadline, "Kafka's authorizer never showed the ACLs"
            time.sleep(0.05)
        self.present = wanted


def _exactly(binding: AclBinding) -> AclBindingFilter:
    """The filter that matches ``binding`` and nothing else (every field given, LITERAL and
    PREFIXED patterns and ``*`` names and principals compared as they are)."""
    return AclBindingFilter(
        binding.restype, binding.name, binding.resource_pattern_type, binding.principal,
        binding.host, binding.operation, binding.permission_type,
    )  # fmt: skip


@pytest.fixture(scope="module")
def peer_acls(admin: AdminClient) -> PeerAcls:
    return PeerAcls(admin)


ACL_CHANGES: Final = frozenset({ApiKey.CREATE_ACLS, ApiKey.DELETE_ACLS})
"""The cases whose request, when granted, changes the peer's ACLs."""
TOPICS_PER_CREATION: Final = 50
"""Variant topics the peer creates in one CreateTopics: a creation costs Kafka a controller
round and a metadata update however many topics it holds, and every variant needs its own."""


class VariantPrefixes:
    """Each variant's unique name prefix (``m<n>-``), whose topic ``<prefix>orders`` already
    exists on the peer: made a batch at a time, ahead of the variants that take them."""

    def __init__(self, admin: AdminClient) -> None:
        self.admin = admin
        self.ready: list[str] = []

    def take(self) -> str:
        if not self.ready:
            self.ready = [f"m{next(_names)}-" for _ in range(TOPICS_PER_CREATION)]
            topics = [NewTopic(prefix + "orders", 1) for prefix in self.ready]
            for future in self.admin.create_topics(topics).values():
                future.result(PROPAGATION_S_MAX)
        return self.ready.pop(0)


@pytest.fixture(scope="module")
def variant_prefixes(admin: AdminClient) -> VariantPrefixes:
    return VariantPrefixes(admin)


def _authorization(response: Any, variant: Variant) -> tuple[int | None, ...]:
    """Per need: the authorization error answered there, or None (any other answer)."""
    codes = (find_code(response, need.at) for need in variant.case.needs)
    return tuple(code if code in AUTHORIZATION_ERRORS else None for code in codes)


@pytest.fixture(scope="module")
def shoal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclHarness]:
    """One in-process shoal for every variant, as one Kafka serves them all: each variant's
    names are its own, and :meth:`AclHarness.only` leaves its ACLs the only ones present."""
    harness = AclHarness(
        tmp_path_factory.mktemp("shoal-acl-matrix"),
        AuthorizerConfig(super_users=frozenset({SUPER_USER})),
    )
    harness.start()
    yield harness
    harness.stop()


def _on_shoal(harness: AclHarness, variant: Variant, topic: str) -> Any:
    assert harness.broker is not None
    harness.broker.create_topic(topic, 1)
    run_setup(harness, variant.case)
    harness.only(*variant.acls)
    case = variant.case
    return harness.call(case.api_key, case.version, with_batch(case.request), principal=PRINCIPAL)


SHARE_GROUP_API_KEYS: Final = frozenset({76, 77, 78, 79, 90, 91, 92})
SHARE_GROUP_LABELS: Final = frozenset({"allow", "no-acl", "deny", "missing", "implied"})
"""The KIP-932 rows (issue 16, slice Q) are compared with Kafka in these variants, the ones
about the rights each API needs; the variants about how ACLs match (prefixed, wildcard, host,
principal), which the authorizer decides alike for every API, run for them in-process and on
shoal's wire (tests/broker/acl), and here for the other rows, within the CI time budget."""
DIFFERENTIAL_VARIANTS: Final = tuple(
    v
    for v in VARIANTS
    if v.case.api_key not in SHARE_GROUP_API_KEYS
    or v.label.rstrip("-0123456789") in SHARE_GROUP_LABELS
)


@pytest.mark.parametrize(
    "template", DIFFERENTIAL_VARIANTS, ids=[v.id for v in DIFFERENTIAL_VARIANTS]
)
def test_kafka_answers_the_documented_result_and_shoal_the_same(
    kafka: SaslKafka,
    alice: WireClient,
    superuser: WireClient,
    peer_acls: PeerAcls,
    variant_prefixes: VariantPrefixes,
    shoal: AclHarness,
    template: Variant,
) -> None:
    prefix = variant_prefixes.take()
    case = renamed(template.case, prefix)
    (variant,) = [v for v in variants(case) if v.label == template.label]
    topic = prefix + "orders"

    def topic_id(name: str) -> Any:
        found = superuser.request(
            ApiKey.METADATA, 12, {"topics": [{"name": name}], "allow_auto_topic_creation": False}
        )
        return found.topics[0].topic_id

    for api_key, version, values in case.setup:
        superuser.request(api_key, version, with_topic_ids(values, topic_id))
    peer_acls.only(variant.acls)
    request = with_topic_ids(with_batch(case.request), topic_id)
    response = alice.request(case.api_key, case.version, request)
    if case.api_key in ACL_CHANGES:
        peer_acls.forget()  # alice's request may have changed the set
    if variant.denied is not None:
        assert read_code(response, variant.denied.at) == variant.denied.error, response
    else:
        assert not {find_code(response, n.at) for n in case.needs} & AUTHORIZATION_ERRORS, response
    on_shoal = _on_shoal(shoal, variant, topic)
    assert _authorization(on_shoal, variant) == _authorization(response, variant), (
        on_shoal,
        response,
    )


def test_authorized_operations_are_kafkas(
    kafka: SaslKafka, alice: WireClient, admin: AdminClient, peer_acls: PeerAcls, tmp_path: Path
) -> None:
    """KIP-430's fields from the ACLs: Metadata (topic and cluster), DescribeCluster,
    DescribeTopicPartitions and DescribeGroups give alice the same bits on both brokers."""
    prefix = f"ops{next(_names)}-"
    topic, group, hidden = prefix + "orders", prefix + "billing", prefix + "hidden"
    admin.create_topics([NewTopic(topic, 1)])[topic].result(PROPAGATION_S_MAX)

    def acl(
        kind: str, name: str, operation: str, permission: str = "ALLOW", pattern: str = "LITERAL"
    ) -> Acl:
        return Acl(kind, name, pattern, PRINCIPAL, "*", operation, permission)

    acls = (
        acl("TOPIC", topic, "READ"),
        acl("TOPIC", prefix, "ALTER_CONFIGS", pattern="PREFIXED"),
        acl("TOPIC", topic, "DESCRIBE_CONFIGS", "DENY"),
        acl("TOPIC", "*", "CREATE"),
        acl("CLUSTER", "kafka-cluster", "ALTER"),
        acl("CLUSTER", "kafka-cluster", "IDEMPOTENT_WRITE"),
        acl("GROUP", group, "DELETE"),
        acl("GROUP", prefix, "READ", pattern="PREFIXED"),
    )
    peer_acls.only(acls)
    requests: list[tuple[int, int, dict[str, Any], Any]] = [
        (ApiKey.METADATA, 10, {"topics": [{"name": topic}], "allow_auto_topic_creation": False,
                               "include_cluster_authorized_operations": True,
                               "include_topic_authorized_operations": True},
         lambda r: (r.cluster_authorized_operations, r.topics[0].topic_authorized_operations)),
        (ApiKey.DESCRIBE_CLUSTER, 1, {"include_cluster_authorized_operations": True},
         lambda r: r.cluster_authorized_operations),
        (ApiKey.DESCRIBE_TOPIC_PARTITIONS, 0, {"topics": [{"name": topic}, {"name": hidden}],
                                               "response_partition_limit": 10, "cursor": None},
         lambda r: [(t.name, t.error_code, t.topic_authorized_operations) for t in r.topics]),
        (ApiKey.METADATA, 12, {"topics": [{"name": hidden}], "allow_auto_topic_creation": False,
                               "include_topic_authorized_operations": True},
         lambda r: [(t.name, t.error_code, t.topic_authorized_operations) for t in r.topics]),
        (ApiKey.DESCRIBE_GROUPS, 5, {"groups": [group], "include_authorized_operations": True},
         lambda r: (r.groups[0].error_code, r.groups[0].authorized_operations)),
    ]  # fmt: skip
    harness = AclHarness(tmp_path / "shoal")
    broker = harness.start()
    try:
        broker.create_topic(topic, 1)
        harness.add(*acls)
        for api_key, version, values, pick in requests:
            on_kafka = pick(alice.request(api_key, version, values))
            on_shoal = pick(harness.call(api_key, version, values, principal=PRINCIPAL))
            assert on_shoal == on_kafka, (api_key, on_shoal, on_kafka)
    finally:
        harness.stop()


def test_listings_show_alice_what_kafka_shows_her(
    kafka: SaslKafka,
    alice: WireClient,
    superuser: WireClient,
    admin: AdminClient,
    peer_acls: PeerAcls,
    tmp_path: Path,
) -> None:
    """Metadata of every topic, and ListGroups without Describe on the cluster, list only what
    alice may describe; the same names on both brokers."""
    prefix = f"list{next(_names)}-"
    topics = [prefix + name for name in ("apple", "apricot", "banana")]
    groups = [prefix + name for name in ("g-one", "g-two", "h-three")]
    for topic in topics:
        admin.create_topics([NewTopic(topic, 1)])[topic].result(PROPAGATION_S_MAX)
    join = {
        "session_timeout": 30000, "rebalance_timeout": 30000, "member_id": "",
        "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b""}],
    }  # fmt: skip
    for group in groups:
        superuser.request(ApiKey.JOIN_GROUP, 3, {"group_id": group, **join})
    acls = (
        Acl("TOPIC", prefix + "ap", "PREFIXED", PRINCIPAL, "*", "WRITE", "ALLOW"),
        Acl("TOPIC", prefix + "apricot", "LITERAL", PRINCIPAL, "*", "DESCRIBE", "DENY"),
        Acl("GROUP", prefix + "g-", "PREFIXED", PRINCIPAL, "*", "READ", "ALLOW"),
        Acl("GROUP", prefix + "g-two", "LITERAL", "User:*", "*", "ALL", "DENY"),
    )
    peer_acls.only(acls)

    def seen(client: Any, principal: str | None) -> tuple[list[str], list[str]]:
        call = (lambda k, v, body: client.request(k, v, body)) if principal is None else (
            lambda k, v, body: client.call(k, v, body, principal=principal))  # fmt: skip
        listed = call(ApiKey.METADATA, 12, {"topics": None})
        grouped = call(ApiKey.LIST_GROUPS, 4, {"states_filter": []})
        names = sorted(t.name for t in listed.topics if t.name.startswith(prefix))
        return names, sorted(g.group_id for g in grouped.groups if g.group_id.startswith(prefix))

    on_kafka = seen(alice, None)
    harness = AclHarness(tmp_path / "shoal", AuthorizerConfig(super_users=frozenset({SUPER_USER})))
    broker = harness.start()
    try:
        for topic in topics:
            broker.create_topic(topic, 1)
        for group in groups:
            harness.call(ApiKey.JOIN_GROUP, 3, {"group_id": group, **join}, principal=SUPER_USER)
        harness.add(*acls)
        assert seen(harness, PRINCIPAL) == on_kafka == ([topics[0]], [groups[0]])
    finally:
        harness.stop()


INVALID_CREATIONS: Final = [
    # Kafka 4.4 answers UNKNOWN_SERVER_ERROR, no message, to a creation with a filter-only code
    # (ANY, MATCH): its broker fails converting the binding before its controller's checks
    # run. shoal answers what those checks would (INVALID_REQUEST, "Invalid resourceType ANY"):
    # the request is the client's mistake, and retrying cannot help. A known, chosen difference.
    ({"resource_type": 1}, ErrorCode.UNKNOWN_SERVER_ERROR),
    ({"resource_pattern_type": 2}, ErrorCode.UNKNOWN_SERVER_ERROR),
    ({"resource_pattern_type": 1}, ErrorCode.UNKNOWN_SERVER_ERROR),
    ({"operation": 1}, ErrorCode.UNKNOWN_SERVER_ERROR),
    ({"permission_type": 1}, ErrorCode.UNKNOWN_SERVER_ERROR),
    # These two Kafka refuses as shoal does, message for message.
    ({"resource_name": ""}, ErrorCode.INVALID_REQUEST),
    ({"resource_type": 4, "resource_name": "other"}, ErrorCode.INVALID_REQUEST),
]


@pytest.mark.parametrize(
    ("changes", "kafka_code"),
    INVALID_CREATIONS,
    ids=["-".join(f"{k}={v}" for k, v in c.items()) for c, _ in INVALID_CREATIONS],
)
def test_invalid_creations_are_refused_as_kafka_refuses_them(
    superuser: WireClient,
    peer_acls: PeerAcls,
    tmp_path: Path,
    changes: dict[str, Any],
    kafka_code: ErrorCode,
) -> None:
    creation = {
        "resource_type": 2, "resource_name": f"inv{next(_names)}", "resource_pattern_type": 3,
        "principal": PRINCIPAL, "host": "*", "operation": 3, "permission_type": 3, **changes,
    }  # fmt: skip
    on_kafka = superuser.request(ApiKey.CREATE_ACLS, 3, {"creations": [creation]}).results[0]
    peer_acls.forget()  # a creation not refused would have changed the peer's set
    harness = AclHarness(tmp_path / "shoal", AuthorizerConfig(super_users=frozenset({SUPER_USER})))
    harness.start()
    try:
        on_shoal = harness.call(
            ApiKey.CREATE_ACLS, 3, {"creations": [creation]}, principal=SUPER_USER
        ).results[0]
    finally:
        harness.stop()
    assert on_kafka.error_code == kafka_code
    assert on_shoal.error_code == ErrorCode.INVALID_REQUEST and on_shoal.error_message
    if kafka_code == ErrorCode.INVALID_REQUEST:
        assert on_shoal.error_message == on_kafka.error_message
