"""Kafka's authorization table as data: for each API, the request, the rights it needs (in the
order Kafka's KafkaApis checks them), and where its answer carries each refusal.

Kept as plain data, free of shoal's internals, so that the same rows can be sent over the wire
to Apache Kafka 4.4 with StandardAuthorizer and SASL users (the principal ``User:alice`` and
the ACLs of each variant), and the codes compared. The expected result of every variant comes
from Kafka's documentation (the "Operations and Resources on Protocols" table of docs/security)
and KafkaApis, not from shoal: a denied right gives exactly the error the table names; a
granted one gives no authorization error.

The resources every case may refer to exist before it runs: topic ``orders`` (1 partition) and
nothing else; groups and transactional ids need not exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Final

from tests.support.share_wire import (
    ACCEPT,
    heartbeat_body,
    share_acknowledge_body,
    share_fetch_body,
)

PRINCIPAL: Final = "User:alice"
SUPER_USER: Final = "User:admin"
"""The in-process broker's super user, who runs a case's setup."""
OTHER_PRINCIPAL: Final = "User:bob"
CLIENT_HOST: Final = "127.0.0.1"
OTHER_HOST: Final = "10.9.9.9"
TOPIC: Final = "orders"
GROUP: Final = "billing"
CLUSTER: Final = "kafka-cluster"

AUTHORIZATION_ERRORS: Final = frozenset({29, 30, 31, 53})
"""TOPIC_, GROUP_, CLUSTER_ and TRANSACTIONAL_ID_AUTHORIZATION_FAILED."""
TOPIC_DENIED: Final = 29
GROUP_DENIED: Final = 30
CLUSTER_DENIED: Final = 31
TXN_DENIED: Final = 53
TXN_ID: Final = "billing"
"""A transactional id (named like the group: one of the names :func:`renamed` makes unique)."""


@dataclass(frozen=True)
class TopicIdOf:
    """A placeholder for the id of topic ``name`` (share-group requests name topics by id):
    each runner puts in the id its broker gave the topic (:func:`harness.with_topic_ids`)."""

    name: str


@dataclass(frozen=True)
class Right:
    """An ACL's resource and operation, by Kafka's names (ResourceType, AclOperation)."""

    resource_type: str  # TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID
    name: str
    operation: str  # READ, WRITE, ..., as AclOperation names them


@dataclass(frozen=True)
class Need:
    """One right a request needs; ``instead`` lists rights that also satisfy it (Create on the
    cluster instead of on the topic, Write on any topic instead of IdempotentWrite)."""

    right: Right
    error: int
    """The code answered when the right is missing."""
    at: tuple[str | int, ...]
    """Where in the response that code appears: attribute names and list indexes."""
    instead: tuple[Right, ...] = ()


@dataclass(frozen=True)
class Case:
    api: str
    api_key: int
    version: int
    request: dict[str, Any]
    needs: tuple[Need, ...]
    setup: tuple[tuple[int, int, dict[str, Any]], ...] = ()
    """Requests a super user sends first (api key, version, values): e.g. a committed offset,
    without which OffsetDelete answers only GROUP_ID_NOT_FOUND."""


@dataclass(frozen=True)
class Acl:
    resource_type: str
    name: str
    pattern_type: str  # LITERAL, PREFIXED
    principal: str
    host: str
    operation: str
    permission: str  # ALLOW, DENY


@dataclass(frozen=True)
class Variant:
    case: Case
    label: str
    acls: tuple[Acl, ...]
    denied: Need | None
    """The need whose error the answer must carry; None: no authorization error at all."""
    id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.case.api}-{self.label}")


def _allow(right: Right, **changes: str) -> Acl:
    acl = Acl(right.resource_type, right.name, "LITERAL", PRINCIPAL, "*", right.operation, "ALLOW")
    return replace(acl, **changes)


def _deny(right: Right, **changes: str) -> Acl:
    return replace(_allow(right, **changes), permission="DENY")


_IMPLYING: Final = {"DESCRIBE": "READ", "DESCRIBE_CONFIGS": "ALTER_CONFIGS"}
"""An ALLOW of the value also grants the key (Kafka: Read/Write/Delete/Alter imply Describe,
AlterConfigs implies DescribeConfigs)."""


_UNRELATED: Final = ("ALTER_CONFIGS", "DELETE", "CREATE")


def variants(case: Case) -> Iterator[Variant]:
    rights = [need.right for need in case.needs]
    every = tuple(_allow(r) for r in rights)
    first = case.needs[0]
    yield Variant(case, "allow", every, None)
    yield Variant(case, "no-acl", (), first)
    for i, need in enumerate(case.needs):
        others = tuple(a for j, a in enumerate(every) if j != i)
        yield Variant(case, f"deny-{i}", (*every, _deny(need.right)), need)
        yield Variant(
            case, f"deny-all-operations-{i}", (*every, _deny(need.right, operation="ALL")), need
        )
        yield Variant(case, f"missing-{i}", others, need)
        for k, alternative in enumerate(need.instead):
            yield Variant(case, f"instead-{i}-{k}", (*others, _allow(alternative)), None)
        implied = _IMPLYING.get(need.right.operation)
        if implied is not None and not (need.right.resource_type == "TRANSACTIONAL_ID"):
            yield Variant(
                case, f"implied-{i}", (*others, _allow(need.right, operation=implied)), None
            )
        # A DENY of another operation (one the request does not need) takes nothing away.
        needed = {r.operation for r in rights if r.resource_type == need.right.resource_type}
        other_op = next(op for op in _UNRELATED if op not in needed)
        yield Variant(
            case, f"deny-other-operation-{i}", (*every, _deny(need.right, operation=other_op)), None
        )
    prefixed = tuple(
        _allow(r, pattern_type="PREFIXED", name=r.name if r.name == CLUSTER else r.name[:3])
        for r in rights
    )
    yield Variant(case, "prefixed", prefixed, None)
    yield Variant(
        case, "deny-prefixed", (*every, *(replace(a, permission="DENY") for a in prefixed)), first
    )
    # The LITERAL "*" resource (the cluster has one name, so only its principal is a wildcard).
    wildcard = tuple(_allow(r, name=r.name if r.name == CLUSTER else "*") for r in rights)
    yield Variant(case, "wildcard-resource", wildcard, None)
    yield Variant(
        case, "wildcard-principal", tuple(_allow(r, principal="User:*") for r in rights), None
    )
    yield Variant(
        case,
        "deny-wildcard-principal",
        (*every, *(_deny(r, principal="User:*") for r in rights)),
        first,
    )
    yield Variant(case, "own-host", tuple(_allow(r, host=CLIENT_HOST) for r in rights), None)
    yield Variant(case, "other-host", tuple(_allow(r, host=OTHER_HOST) for r in rights), first)
    yield Variant(
        case, "other-principal", tuple(_allow(r, principal=OTHER_PRINCIPAL) for r in rights), first
    )


def _topic(operation: str, name: str = TOPIC) -> Right:
    return Right("TOPIC", name, operation)


def _group(operation: str) -> Right:
    return Right("GROUP", GROUP, operation)


def _cluster(operation: str) -> Right:
    return Right("CLUSTER", CLUSTER, operation)


def _txn(operation: str) -> Right:
    return Right("TRANSACTIONAL_ID", TXN_ID, operation)


_ADDED: Final = (
    "results_by_topic_v3_and_below",
    0,
    "results_by_partition",
    0,
    "partition_error_code",
)


def _one_partition(name: str = TOPIC, **fields: Any) -> dict[str, Any]:
    return {"name": name, "partitions": [{"partition_index": 0, **fields}]}


_COMMITTED: Final = (
    8,
    8,
    {
        "group_id": GROUP,
        "generation_id_or_member_epoch": -1,
        "member_id": "",
        "topics": [_one_partition(committed_offset=0)],
    },
)
"""An offset of the group on the topic, committed by a super user: the group then exists."""

SHARE_MEMBER: Final = "share-member-0000000001"
"""The share-group member the share cases act as (KIP-932 v1: the client names itself)."""
_SHARE_JOIN: Final = heartbeat_body(GROUP, SHARE_MEMBER, 0, [TOPIC])
"""A member joins the share group subscribed to the topic (a super user's, as setup)."""


_SHARE_START: Final = {
    "group_id": GROUP,
    "topics": [{"topic_name": TOPIC, "partitions": [{"partition_index": 0, "start_offset": 0}]}],
}
"""The group's share-partition set to start at 0 (an admin's; it makes an empty group)."""


def _share_fetch(epoch: int) -> dict[str, Any]:
    return share_fetch_body(
        GROUP, SHARE_MEMBER, epoch, TopicIdOf(TOPIC), max_wait_ms=0, min_bytes=0, max_records=10
    )


CASES: Final[tuple[Case, ...]] = (
    Case(
        "Produce",
        0,
        9,
        {
            "acks": -1,
            "timeout": 5000,
            "topic_data": [{"name": TOPIC, "partition_data": [{"index": 0, "records": "BATCH"}]}],
        },
        (
            Need(
                _topic("WRITE"),
                TOPIC_DENIED,
                ("responses", 0, "partition_responses", 0, "error_code"),
            ),
        ),
    ),
    Case(
        "Fetch",
        1,
        12,
        {
            "replica_id": -1,
            "max_wait": 0,
            "min_bytes": 0,
            "max_bytes": 1 << 20,
            "topics": [
                {
                    "topic": TOPIC,
                    "partitions": [
                        {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}
                    ],
                }
            ],
        },
        (Need(_topic("READ"), TOPIC_DENIED, ("responses", 0, "partitions", 0, "error_code")),),
    ),
    Case(
        "ListOffsets",
        2,
        7,
        {"replica_id": -1, "topics": [_one_partition(timestamp=-1)]},
        (Need(_topic("DESCRIBE"), TOPIC_DENIED, ("topics", 0, "partitions", 0, "error_code")),),
    ),
    Case(
        "Metadata",
        3,
        12,
        {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": False},
        (Need(_topic("DESCRIBE"), TOPIC_DENIED, ("topics", 0, "error_code")),),
    ),
    Case(
        "Metadata-auto-create",
        3,
        12,
        {"topics": [{"name": "ordersnew"}], "allow_auto_topic_creation": True},
        (
            Need(_topic("DESCRIBE", "ordersnew"), TOPIC_DENIED, ("topics", 0, "error_code")),
            Need(
                _topic("CREATE", "ordersnew"),
                TOPIC_DENIED,
                ("topics", 0, "error_code"),
                instead=(_cluster("CREATE"),),
            ),
        ),
    ),
    Case(
        "OffsetCommit",
        8,
        8,
        {
            "group_id": GROUP,
            "generation_id_or_member_epoch": -1,
            "member_id": "",
            "topics": [_one_partition(committed_offset=0)],
        },
        (
            Need(_group("READ"), GROUP_DENIED, ("topics", 0, "partitions", 0, "error_code")),
            Need(_topic("READ"), TOPIC_DENIED, ("topics", 0, "partitions", 0, "error_code")),
        ),
    ),
    Case(
        "OffsetFetch",
        9,
        7,
        {"group_id": GROUP, "topics": [{"name": TOPIC, "partition_indexes": [0]}]},
        (
            Need(_group("DESCRIBE"), GROUP_DENIED, ("error_code",)),
            Need(_topic("DESCRIBE"), TOPIC_DENIED, ("topics", 0, "partitions", 0, "error_code")),
        ),
    ),
    Case(
        "FindCoordinator",
        10,
        3,
        {"key": GROUP, "key_type": 0},
        (Need(_group("DESCRIBE"), GROUP_DENIED, ("error_code",)),),
    ),
    Case(
        "FindCoordinator-batched",
        10,
        4,
        {"coordinator_keys": [GROUP], "key_type": 0},
        (Need(_group("DESCRIBE"), GROUP_DENIED, ("coordinators", 0, "error_code")),),
    ),
    Case(
        "JoinGroup",
        11,
        5,
        {
            "group_id": GROUP,
            "session_timeout": 10000,
            "rebalance_timeout": 10000,
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}],
        },
        (Need(_group("READ"), GROUP_DENIED, ("error_code",)),),
    ),
    Case(
        "Heartbeat",
        12,
        3,
        {"group_id": GROUP, "generation_id": 1, "member_id": "m"},
        (Need(_group("READ"), GROUP_DENIED, ("error_code",)),),
    ),
    # KIP-848 consumer groups (issue 16, slice K).
    Case(
        "ConsumerGroupHeartbeat",
        68,
        1,
        {
            "group_id": GROUP,
            "member_id": "kip848-member",
            "member_epoch": 0,
            "rebalance_timeout": 30000,
            "subscribed_topic_names": [TOPIC],
            "topic_partitions": [],
        },
        (
            Need(_group("READ"), GROUP_DENIED, ("error_code",)),
            Need(_topic("DESCRIBE"), TOPIC_DENIED, ("error_code",)),
        ),
    ),
    Case(
        "ConsumerGroupDescribe",
        69,
        1,
        {"group_ids": [GROUP], "include_authorized_operations": False},
        (Need(_group("DESCRIBE"), GROUP_DENIED, ("groups", 0, "error_code")),),
    ),
    # KIP-932 share groups (issue 16, slice Q): Group Read to take part, Topic Describe to
    # subscribe and Read to fetch or acknowledge; Group Describe (and Topic Describe) to
    # describe; Group Read (Delete to delete) and Topic Read to change a group's offsets.
    Case(
        "ShareGroupHeartbeat",
        76,
        1,
        _SHARE_JOIN,
        (
            Need(_group("READ"), GROUP_DENIED, ("error_code",)),
            Need(_topic("DESCRIBE"), TOPIC_DENIED, ("error_code",)),
        ),
    ),
    Case(
        "ShareGroupDescribe",
        77,
        1,
        {"group_ids": [GROUP], "include_authorized_operations": False},
        (Need(_group("DESCRIBE"), GROUP_DENIED, ("groups", 0, "error_code")),),
        setup=((76, 1, _SHARE_JOIN),),
    ),
    Case(
        "ShareFetch",
        78,
        1,
        _share_fetch(0),
        (
            Need(_group("READ"), GROUP_DENIED, ("error_code",)),
            Need(_topic("READ"), TOPIC_DENIED, ("responses", 0, "partitions", 0, "error_code")),
        ),
        setup=((76, 1, _SHARE_JOIN),),
    ),
    Case(
        "ShareAcknowledge",
        79,
        1,
        share_acknowledge_body(GROUP, SHARE_MEMBER, 1, TopicIdOf(TOPIC), [(0, 0, ACCEPT)]),
        (
            Need(_group("READ"), GROUP_DENIED, ("error_code",)),
            Need(_topic("READ"), TOPIC_DENIED, ("responses", 0, "partitions", 0, "error_code")),
        ),
        # The member's share session (epoch 0 opens it; the next request carries epoch 1).
        setup=((76, 1, _SHARE_JOIN), (78, 1, _share_fetch(0))),
    ),
    Case(
        "DescribeShareGroupOffsets",
        90,
        0,
        {"groups": [{"group_id": GROUP, "topics": [{"topic_name": TOPIC, "partitions": [0]}]}]},
        (
            Need(_group("DESCRIBE"), GROUP_DENIED, ("groups", 0, "error_code")),
            Need(
                _topic("DESCRIBE"),
                TOPIC_DENIED,
                ("groups", 0, "topics", 0, "partitions", 0, "error_code"),
            ),
        ),
        setup=((76, 1, _SHARE_JOIN),),
    ),
    Case(
        "AlterShareGroupOffsets",
        91,
        0,
        _SHARE_START,
        (
            Need(_group("READ"), GROUP_DENIED, ("error_code",)),
            Need(_topic("READ"), TOPIC_DENIED, ("responses", 0, "partitions", 0, "error_code")),
        ),
    ),
    Case(
        "DeleteShareGroupOffsets",
        92,
        0,
        {"group_id": GROUP, "topics": [{"topic_name": TOPIC}]},
        (
            Need(_group("DELETE"), GROUP_DENIED, ("error_code",)),
            Need(_topic("READ"), TOPIC_DENIED, ("responses", 0, "error_code")),
        ),
        # An empty share group: its member joins and leaves (epoch -1).
        setup=((76, 1, _SHARE_JOIN), (76, 1, {**_SHARE_JOIN, "member_epoch": -1})),
    ),
    Case(
        "LeaveGroup",
        13,
        3,
        {"group_id": GROUP, "members": [{"member_id": "m"}]},
        (Need(_group("READ"), GROUP_DENIED, ("error_code",)),),
    ),
    Case(
        "SyncGroup",
        14,
        3,
        {"group_id": GROUP, "generation_id": 1, "member_id": "m", "assignments": []},
        (Need(_group("READ"), GROUP_DENIED, ("error_code",)),),
    ),
    Case(
        "DescribeGroups",
        15,
        5,
        {"groups": [GROUP], "include_authorized_operations": True},
        (Need(_group("DESCRIBE"), GROUP_DENIED, ("groups", 0, "error_code")),),
    ),
    Case(
        "CreateTopics",
        19,
        5,
        {
            "topics": [{"name": "fresh", "num_partitions": 1, "replication_factor": 1}],
            "timeout": 5000,
        },
        (
            Need(
                _topic("CREATE", "fresh"),
                TOPIC_DENIED,
                ("topics", 0, "error_code"),
                instead=(_cluster("CREATE"),),
            ),
        ),
    ),
    Case(
        "DeleteTopics",
        20,
        5,
        {"topic_names": [TOPIC], "timeout": 5000},
        (Need(_topic("DELETE"), TOPIC_DENIED, ("responses", 0, "error_code")),),
    ),
    Case(
        "DeleteRecords",
        21,
        2,
        {
            "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "offset": 0}]}],
            "timeout": 5000,
        },
        (Need(_topic("DELETE"), TOPIC_DENIED, ("topics", 0, "partitions", 0, "error_code")),),
    ),
    Case(
        "InitProducerId",
        22,
        4,
        {
            "transactional_id": None,
            "transaction_timeout": 60000,
            "producer_id": -1,
            "producer_epoch": -1,
        },
        (
            Need(
                _cluster("IDEMPOTENT_WRITE"),
                CLUSTER_DENIED,
                ("error_code",),
                instead=(_topic("WRITE"), _topic("WRITE", "elsewhere")),
            ),
        ),
    ),
    Case(
        "OffsetForLeaderEpoch",
        23,
        4,
        {
            "replica_id": -1,
            "topics": [
                {
                    "topic": TOPIC,
                    "partitions": [{"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}],
                }
            ],
        },
        (
            Need(
                _topic("DESCRIBE"),
                TOPIC_DENIED,
                ("topics", 0, "partitions", 0, "error_code"),
                instead=(_cluster("CLUSTER_ACTION"),),
            ),
        ),
    ),
    Case(
        "DescribeConfigs-topic",
        32,
        4,
        {"resources": [{"resource_type": 2, "resource_name": TOPIC, "configuration_keys": None}]},
        (Need(_topic("DESCRIBE_CONFIGS"), TOPIC_DENIED, ("results", 0, "error_code")),),
    ),
    Case(
        "DescribeConfigs-broker",
        32,
        4,
        {"resources": [{"resource_type": 4, "resource_name": "1", "configuration_keys": None}]},
        (Need(_cluster("DESCRIBE_CONFIGS"), CLUSTER_DENIED, ("results", 0, "error_code")),),
    ),
    Case(
        "AlterConfigs-topic",
        33,
        2,
        {
            "resources": [
                {
                    "resource_type": 2,
                    "resource_name": TOPIC,
                    "configs": [{"name": "retention.ms", "value": "60000"}],
                }
            ],
            "validate_only": False,
        },
        (Need(_topic("ALTER_CONFIGS"), TOPIC_DENIED, ("responses", 0, "error_code")),),
    ),
    Case(
        "AlterConfigs-broker",
        33,
        2,
        {
            "resources": [
                {
                    "resource_type": 4,
                    "resource_name": "",
                    "configs": [{"name": "log.retention.ms", "value": "60000"}],
                }
            ],
            "validate_only": True,
        },
        (Need(_cluster("ALTER_CONFIGS"), CLUSTER_DENIED, ("responses", 0, "error_code")),),
    ),
    Case(
        "IncrementalAlterConfigs-topic",
        44,
        1,
        {
            "resources": [
                {
                    "resource_type": 2,
                    "resource_name": TOPIC,
                    "configs": [{"name": "retention.ms", "config_operation": 0, "value": "60000"}],
                }
            ],
            "validate_only": False,
        },
        (Need(_topic("ALTER_CONFIGS"), TOPIC_DENIED, ("responses", 0, "error_code")),),
    ),
    Case(
        "AlterReplicaLogDirs",
        34,
        2,
        {"dirs": [{"path": "/nowhere", "topics": [{"name": TOPIC, "partitions": [0]}]}]},
        (Need(_cluster("ALTER"), CLUSTER_DENIED, ("results", 0, "partitions", 0, "error_code")),),
    ),
    Case(
        "DescribeLogDirs",
        35,
        4,
        {"topics": None},
        (Need(_cluster("DESCRIBE"), CLUSTER_DENIED, ("error_code",)),),
    ),
    Case(
        "CreatePartitions",
        37,
        3,
        {
            "topics": [{"name": TOPIC, "count": 2, "assignments": None}],
            "timeout": 5000,
            "validate_only": True,
        },
        (Need(_topic("ALTER"), TOPIC_DENIED, ("results", 0, "error_code")),),
    ),
    Case(
        "DeleteGroups",
        42,
        2,
        {"groups_names": [GROUP]},
        (Need(_group("DELETE"), GROUP_DENIED, ("results", 0, "error_code")),),
    ),
    Case(
        "ElectLeaders",
        43,
        2,
        {
            "election_type": 0,
            "topic_partitions": [{"topic": TOPIC, "partitions": [0]}],
            "timeout": 5000,
        },
        (Need(_cluster("ALTER"), CLUSTER_DENIED, ("error_code",)),),
    ),
    Case(
        "AlterPartitionReassignments",
        45,
        0,
        {
            "timeout": 5000,
            "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "replicas": None}]}],
        },
        (Need(_cluster("ALTER"), CLUSTER_DENIED, ("error_code",)),),
    ),
    Case(
        "ListPartitionReassignments",
        46,
        0,
        {"timeout": 5000, "topics": None},
        (Need(_cluster("DESCRIBE"), CLUSTER_DENIED, ("error_code",)),),
    ),
    Case(
        "OffsetDelete",
        47,
        0,
        {"group_id": GROUP, "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0}]}]},
        (
            Need(_group("DELETE"), GROUP_DENIED, ("error_code",)),
            Need(_topic("READ"), TOPIC_DENIED, ("topics", 0, "partitions", 0, "error_code")),
        ),
        setup=(_COMMITTED,),
    ),
    Case(
        "DescribeQuorum",
        55,
        2,
        {"topics": [{"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}]},
        (Need(_cluster("DESCRIBE"), CLUSTER_DENIED, ("error_code",)),),
    ),
    Case(
        "UpdateFeatures",
        57,
        1,
        {"timeout": 5000, "feature_updates": [], "validate_only": True},
        (Need(_cluster("ALTER"), CLUSTER_DENIED, ("error_code",)),),
    ),
    Case(
        "DescribeProducers",
        61,
        0,
        {"topics": [{"name": TOPIC, "partition_indexes": [0]}]},
        (Need(_topic("READ"), TOPIC_DENIED, ("topics", 0, "partitions", 0, "error_code")),),
    ),
    Case(
        "ListConfigResources",
        74,
        1,
        {"resource_types": []},
        (Need(_cluster("DESCRIBE_CONFIGS"), CLUSTER_DENIED, ("error_code",)),),
    ),
    Case(
        "DescribeTopicPartitions",
        75,
        0,
        {"topics": [{"name": TOPIC}], "response_partition_limit": 100, "cursor": None},
        (Need(_topic("DESCRIBE"), TOPIC_DENIED, ("topics", 0, "error_code")),),
    ),
    Case(
        "DescribeAcls",
        29,
        3,
        {
            "resource_type_filter": 1,
            "resource_name_filter": None,
            "pattern_type_filter": 1,
            "principal_filter": None,
            "host_filter": None,
            "operation": 1,
            "permission_type": 1,
        },
        (Need(_cluster("DESCRIBE"), CLUSTER_DENIED, ("error_code",)),),
    ),
    Case(
        "CreateAcls",
        30,
        3,
        {
            "creations": [
                {
                    "resource_type": 2,
                    "resource_name": "x",
                    "resource_pattern_type": 3,
                    "principal": "User:carol",
                    "host": "*",
                    "operation": 3,
                    "permission_type": 3,
                }
            ]
        },
        (Need(_cluster("ALTER"), CLUSTER_DENIED, ("results", 0, "error_code")),),
    ),
    Case(
        "DeleteAcls",
        31,
        3,
        {
            "filters": [
                {
                    "resource_type_filter": 2,
                    "resource_name_filter": "x",
                    "pattern_type_filter": 3,
                    "principal_filter": "User:carol",
                    "host_filter": None,
                    "operation": 1,
                    "permission_type": 1,
                }
            ]
        },
        (Need(_cluster("ALTER"), CLUSTER_DENIED, ("filter_results", 0, "error_code")),),
    ),
    # Transactions (issue 14, transactions slice).
    Case(
        "FindCoordinator-transaction",
        10,
        3,
        {"key": TXN_ID, "key_type": 1},
        (Need(_txn("DESCRIBE"), TXN_DENIED, ("error_code",)),),
    ),
    Case(
        "InitProducerId-transactional",
        22,
        4,
        {
            "transactional_id": TXN_ID,
            "transaction_timeout": 60000,
            "producer_id": -1,
            "producer_epoch": -1,
        },
        (Need(_txn("WRITE"), TXN_DENIED, ("error_code",)),),
    ),
    Case(
        "AddPartitionsToTxn",
        24,
        3,
        {
            "v3_and_below_transactional_id": TXN_ID,
            "v3_and_below_producer_id": 0,
            "v3_and_below_producer_epoch": 0,
            "v3_and_below_topics": [{"name": TOPIC, "partitions": [0]}],
        },
        (
            Need(_txn("WRITE"), TXN_DENIED, _ADDED),
            Need(_topic("WRITE"), TOPIC_DENIED, _ADDED),
        ),
    ),
    Case(
        "AddOffsetsToTxn",
        25,
        3,
        {"transactional_id": TXN_ID, "producer_id": 0, "producer_epoch": 0, "group_id": GROUP},
        (
            Need(_txn("WRITE"), TXN_DENIED, ("error_code",)),
            Need(_group("READ"), GROUP_DENIED, ("error_code",)),
        ),
    ),
    Case(
        "EndTxn",
        26,
        3,
        {"transactional_id": TXN_ID, "producer_id": 0, "producer_epoch": 0, "committed": True},
        (Need(_txn("WRITE"), TXN_DENIED, ("error_code",)),),
    ),
    Case(
        "TxnOffsetCommit",
        28,
        3,
        {
            "transactional_id": TXN_ID,
            "group_id": GROUP,
            "producer_id": 0,
            "producer_epoch": 0,
            "generation_id": -1,
            "member_id": "",
            "group_instance_id": None,
            "topics": [_one_partition(committed_offset=0, committed_metadata="")],
        },
        (
            Need(_txn("WRITE"), TXN_DENIED, ("topics", 0, "partitions", 0, "error_code")),
            Need(_group("READ"), GROUP_DENIED, ("topics", 0, "partitions", 0, "error_code")),
            Need(_topic("READ"), TOPIC_DENIED, ("topics", 0, "partitions", 0, "error_code")),
        ),
    ),
    Case(
        "DescribeTransactions",
        65,
        0,
        {"transactional_ids": [TXN_ID]},
        (Need(_txn("DESCRIBE"), TXN_DENIED, ("transaction_states", 0, "error_code")),),
    ),
    # An operator's marker (kafka-transactions abort; issue 14, txn7b): granted, an ABORT
    # marker for a producer with nothing open on the partition, written and harmless.
    Case(
        "WriteTxnMarkers",
        27,
        1,
        {
            "markers": [
                {
                    "producer_id": 4242,
                    "producer_epoch": 0,
                    "transaction_result": False,
                    "topics": [{"name": TOPIC, "partition_indexes": [0]}],
                    "coordinator_epoch": 0,
                }
            ]
        },
        (
            Need(
                _cluster("CLUSTER_ACTION"),
                CLUSTER_DENIED,
                ("markers", 0, "topics", 0, "partitions", 0, "error_code"),
            ),
        ),
    ),
)

VARIANTS: Final[tuple[Variant, ...]] = tuple(v for case in CASES for v in variants(case))


def read_code(response: Any, at: tuple[str | int, ...]) -> int:
    """The error code at ``at`` in a decoded response (kio dataclasses, lists by index)."""
    value = response
    for step in at:
        value = value[step] if isinstance(step, int) else getattr(value, step)
    return int(value)


def find_code(response: Any, at: tuple[str | int, ...]) -> int | None:
    """As :func:`read_code`, or None when the response has no such place (a granted request
    may answer with fewer entries: an unknown group lists no partitions)."""
    try:
        return read_code(response, at)
    except IndexError:
        return None


RENAMED: Final = ("orders", "ordersnew", "fresh", "elsewhere", "billing")
"""The resource names a case may use, which :func:`renamed` makes unique."""


def renamed(case: Case, prefix: str) -> Case:
    """``case`` with every resource name of :data:`RENAMED` prefixed: for one broker that
    serves every variant in turn (a peer), where names must not meet twice. Variants are then
    made from it (their PREFIXED ACLs use the new names' first characters)."""

    def swap(value: Any) -> Any:
        if isinstance(value, str) and value in RENAMED:
            return prefix + value
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, (Right, TopicIdOf)):
            return replace(value, name=swap(value.name))
        if isinstance(value, tuple):
            return tuple(swap(v) for v in value)
        if isinstance(value, Need):
            return replace(value, right=swap(value.right), instead=swap(value.instead))
        return value

    return replace(
        case,
        request=swap(case.request),
        needs=swap(case.needs),
        setup=tuple((key, version, swap(values)) for key, version, values in case.setup),
    )
