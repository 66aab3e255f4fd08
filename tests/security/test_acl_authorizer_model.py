"""The indexed authorizer against a plain model of Kafka's rules, on random ACL sets: the index
(by resource type and name, prefixes by length) must never change a decision."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.security.acl import (
    WILDCARD,
    AclBinding,
    AclOperation,
    PatternType,
    PermissionType,
    ResourceType,
)
from shoal.security.acl_authorizer import Authorizer, AuthorizerConfig

NAMES = st.text(alphabet="ab*", min_size=1, max_size=4)
OPERATIONS = st.sampled_from(
    [AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.ALTER_CONFIGS,
     AclOperation.DESCRIBE_CONFIGS, AclOperation.ALL, AclOperation.CREATE]
)  # fmt: skip
BINDINGS = st.builds(
    AclBinding,
    resource_type=st.sampled_from([ResourceType.TOPIC, ResourceType.GROUP]),
    resource_name=NAMES,
    pattern_type=st.sampled_from([PatternType.LITERAL, PatternType.PREFIXED]),
    principal=st.sampled_from(["User:alice", "User:bob", "User:*"]),
    host=st.sampled_from(["*", "127.0.0.1", "10.0.0.1"]),
    operation=OPERATIONS,
    permission_type=st.sampled_from([PermissionType.ALLOW, PermissionType.DENY]),
)

IMPLIES = {
    AclOperation.DESCRIBE: {AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE,
                            AclOperation.ALTER, AclOperation.DESCRIBE},
    AclOperation.DESCRIBE_CONFIGS: {AclOperation.ALTER_CONFIGS, AclOperation.DESCRIBE_CONFIGS},
}  # fmt: skip


def model(acls: list[AclBinding], principal: str, host: str, op: AclOperation,
          kind: ResourceType, name: str, allow_everyone: bool) -> bool:  # fmt: skip
    """Kafka's rules as its documentation states them, with no index."""

    def applies(a: AclBinding) -> bool:
        if a.resource_type is not kind:
            return False
        if a.pattern_type is PatternType.LITERAL:
            return a.resource_name in (name, WILDCARD)
        return name.startswith(a.resource_name)

    def matches(a: AclBinding) -> bool:
        if a.principal not in (principal, "User:*") or a.host not in (host, "*"):
            return False
        if a.operation is AclOperation.ALL or a.operation is op:
            return True
        return a.permission_type is PermissionType.ALLOW and a.operation in IMPLIES.get(op, ())

    on_resource = [a for a in acls if applies(a)]
    matching = [a for a in on_resource if matches(a)]
    if any(a.permission_type is PermissionType.DENY for a in matching):
        return False
    if matching:
        return True
    return allow_everyone and not on_resource


@settings(max_examples=300, deadline=None)
@given(
    acls=st.lists(BINDINGS, max_size=12),
    name=NAMES.filter(lambda n: n != "*"),
    op=OPERATIONS.filter(lambda o: o is not AclOperation.ALL),
    host=st.sampled_from(["127.0.0.1", "10.0.0.1"]),
    kind=st.sampled_from([ResourceType.TOPIC, ResourceType.GROUP]),
    allow_everyone=st.booleans(),
    removed=st.integers(min_value=0, max_value=12),
)
def test_the_indexed_authorizer_decides_as_the_model(
    acls: list[AclBinding], name: str, op: AclOperation, host: str, kind: ResourceType,
    allow_everyone: bool, removed: int,
) -> None:  # fmt: skip
    authorizer = Authorizer(AuthorizerConfig(allow_everyone_if_no_acl_found=allow_everyone), acls)
    # Removing some exercises the index rebuild too.
    gone = acls[:removed]
    authorizer.remove(gone)
    kept = [a for a in dict.fromkeys(acls) if a not in set(gone)]
    expected = model(kept, "User:alice", host, op, kind, name, allow_everyone)
    assert authorizer.authorize("User:alice", host, op, kind, name) == expected
