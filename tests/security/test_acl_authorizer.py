"""The authorizer decides as Kafka's StandardAuthorizer: one rule per test, each with the case
that would tell it apart from a near miss."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from shoal.security.acl import (
    AclBinding,
    AclBindingFilter,
    AclError,
    AclOperation,
    PatternType,
    PermissionType,
    ResourceType,
    validate_binding,
)
from shoal.security.acl_authorizer import Authorizer, AuthorizerConfig, parse_super_users

ALICE = "User:alice"
HOST = "127.0.0.1"
T = ResourceType.TOPIC
Op = AclOperation
ALLOW = PermissionType.ALLOW
DENY = PermissionType.DENY


def acl(
    name: str = "orders",
    op: AclOperation = Op.READ,
    permission: PermissionType = ALLOW,
    *,
    kind: ResourceType = T,
    pattern: PatternType = PatternType.LITERAL,
    principal: str = ALICE,
    host: str = "*",
) -> AclBinding:
    return AclBinding(kind, name, pattern, principal, host, op, permission)


def authorizer(acls: Iterable[AclBinding], **config: object) -> Authorizer:
    return Authorizer(AuthorizerConfig(**config), acls)  # type: ignore[arg-type]


def may(a: Authorizer, op: AclOperation, name: str = "orders", *, principal: str = ALICE,
        host: str = HOST, kind: ResourceType = T) -> bool:  # fmt: skip
    return a.authorize(principal, host, op, kind, name)


def test_no_acl_denies_by_default_and_allows_with_allow_everyone() -> None:
    assert not may(authorizer([]), Op.READ)
    assert may(authorizer([], allow_everyone_if_no_acl_found=True), Op.READ)


def test_allow_everyone_applies_only_to_resources_without_any_acl() -> None:
    a = authorizer([acl(principal="User:bob")], allow_everyone_if_no_acl_found=True)
    assert not may(a, Op.READ)  # an ACL exists on the resource, for somebody else
    assert may(a, Op.READ, "payments")  # none on this one


def test_allow_for_the_operation_allows_only_it() -> None:
    a = authorizer([acl(op=Op.WRITE)])
    assert may(a, Op.WRITE)
    assert not may(a, Op.READ)
    assert not may(a, Op.WRITE, "payments")


@pytest.mark.parametrize("granted", [Op.READ, Op.WRITE, Op.DELETE, Op.ALTER, Op.DESCRIBE])
def test_read_write_delete_alter_imply_describe(granted: AclOperation) -> None:
    assert may(authorizer([acl(op=granted)]), Op.DESCRIBE)


@pytest.mark.parametrize("granted", [Op.CREATE, Op.ALTER_CONFIGS, Op.DESCRIBE_CONFIGS])
def test_create_and_the_config_operations_do_not_imply_describe(granted: AclOperation) -> None:
    assert not may(authorizer([acl(op=granted)]), Op.DESCRIBE)


def test_alter_configs_implies_describe_configs_but_not_the_other_way() -> None:
    assert may(authorizer([acl(op=Op.ALTER_CONFIGS)]), Op.DESCRIBE_CONFIGS)
    assert not may(authorizer([acl(op=Op.DESCRIBE_CONFIGS)]), Op.ALTER_CONFIGS)


def test_all_allows_and_denies_every_operation() -> None:
    every = [op for op in Op if op not in (Op.UNKNOWN, Op.ANY, Op.ALL)]
    assert all(may(authorizer([acl(op=Op.ALL)]), op) for op in every)
    a = authorizer([acl(op=Op.ALL), acl(op=Op.ALL, permission=DENY)])
    assert not any(may(a, op) for op in every)


def test_deny_wins_over_allow() -> None:
    assert not may(authorizer([acl(), acl(permission=DENY)]), Op.READ)


def test_a_deny_denies_only_its_own_operation_even_where_an_allow_implies_it() -> None:
    # DENY Read leaves Describe (from ALLOW Describe) alone; DENY Describe removes the
    # Describe that ALLOW Read implies, and not Read.
    a = authorizer([acl(op=Op.DESCRIBE), acl(permission=DENY)])
    assert may(a, Op.DESCRIBE) and not may(a, Op.READ)
    b = authorizer([acl(), acl(op=Op.DESCRIBE, permission=DENY)])
    assert may(b, Op.READ) and not may(b, Op.DESCRIBE)


def test_deny_on_a_prefix_or_the_wildcard_wins_over_a_literal_allow() -> None:
    assert not may(
        authorizer([acl(), acl("ord", pattern=PatternType.PREFIXED, permission=DENY)]), Op.READ
    )
    assert not may(authorizer([acl(), acl("*", permission=DENY)]), Op.READ)


def test_prefixed_matches_names_that_start_with_it() -> None:
    a = authorizer([acl("ord", pattern=PatternType.PREFIXED)])
    assert may(a, Op.READ, "orders") and may(a, Op.READ, "ord")
    assert not may(a, Op.READ, "or") and not may(a, Op.READ, "xorders")


def test_a_literal_matches_only_its_own_name() -> None:
    a = authorizer([acl("ord")])
    assert may(a, Op.READ, "ord") and not may(a, Op.READ, "orders")


def test_the_literal_wildcard_matches_every_name_a_prefixed_star_only_names_with_it() -> None:
    assert may(authorizer([acl("*")]), Op.READ, "anything")
    a = authorizer([acl("*", pattern=PatternType.PREFIXED)])
    assert not may(a, Op.READ, "orders") and may(a, Op.READ, "*x")


def test_resource_types_are_apart() -> None:
    a = authorizer([acl(kind=ResourceType.GROUP)])
    assert may(a, Op.READ, kind=ResourceType.GROUP) and not may(a, Op.READ)


def test_the_wildcard_principal_matches_everyone() -> None:
    a = authorizer([acl(principal="User:*")])
    assert may(a, Op.READ) and may(a, Op.READ, principal="User:bob")
    assert not may(authorizer([acl(principal="User:bob")]), Op.READ)


def test_hosts() -> None:
    a = authorizer([acl(host=HOST)])
    assert may(a, Op.READ) and not may(a, Op.READ, host="10.0.0.1")


def test_super_users_may_do_anything_even_against_a_deny() -> None:
    a = authorizer([acl(op=Op.ALL, permission=DENY)], super_users=frozenset({ALICE}))
    assert may(a, Op.DELETE) and may(a, Op.ALTER, kind=ResourceType.CLUSTER, name="kafka-cluster")
    assert not may(a, Op.DELETE, principal="User:bob")


def test_super_users_are_semicolon_separated_principals() -> None:
    assert parse_super_users(" User:admin ; User:ops;;") == {"User:admin", "User:ops"}
    with pytest.raises(AclError, match="principalType:principalName"):
        parse_super_users("admin")


def test_authorized_operations_are_the_supported_ones_allowed() -> None:
    a = authorizer([acl(op=Op.READ)])
    bits = a.authorized_operations(ALICE, HOST, T, "orders")
    assert bits == (1 << Op.READ) | (1 << Op.DESCRIBE)


# -- authorize by resource type (KIP-679: Write on any topic instead of IdempotentWrite) ------


def by_type(acls: Iterable[AclBinding], **config: object) -> bool:
    return authorizer(acls, **config).authorize_by_resource_type(ALICE, HOST, Op.WRITE, T)


def test_by_resource_type_allows_when_some_allow_is_not_covered_by_a_deny() -> None:
    assert by_type([acl("abc", Op.WRITE)])
    assert by_type([acl("abc", Op.WRITE), acl("abd", Op.WRITE, DENY)])
    assert by_type([acl("ab", Op.WRITE, pattern=PatternType.PREFIXED), acl("abc", Op.WRITE, DENY)])


def test_by_resource_type_denies_when_every_allow_is_covered() -> None:
    assert not by_type([])
    assert not by_type([acl("abc", Op.READ)])  # another operation; nothing implied here
    assert not by_type([acl("abc", Op.WRITE), acl("abc", Op.WRITE, DENY)])
    assert not by_type(
        [acl("abc", Op.WRITE), acl("ab", Op.WRITE, DENY, pattern=PatternType.PREFIXED)]
    )
    assert not by_type([acl("*", Op.WRITE), acl("*", Op.WRITE, DENY)])
    assert not by_type([acl("abc", Op.WRITE, principal="User:bob")])


def test_by_resource_type_allows_a_wildcard_allow_and_super_users() -> None:
    assert by_type([acl("*", Op.WRITE)])
    assert by_type([acl("*", Op.ALL, DENY)], super_users=frozenset({ALICE}))


# -- bindings and filters -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        (acl(kind=ResourceType.ANY), "Invalid resourceType ANY"),
        (acl(pattern=PatternType.MATCH), "Invalid patternType MATCH"),
        (acl(op=Op.ANY), "Invalid operation ANY"),
        (acl(permission=PermissionType.ANY), "Invalid permissionType ANY"),
        (acl(""), "Invalid empty resource name"),
        (acl("cluster", kind=ResourceType.CLUSTER), "only valid name for the CLUSTER"),
        (acl(principal="alice"), "principalType:principalName"),
    ],
)
def test_invalid_bindings_are_refused_with_kafkas_message(
    binding: AclBinding, message: str
) -> None:
    with pytest.raises(AclError, match=message):
        validate_binding(binding)


LITERAL = acl("orders")
PREFIX = acl("ord", pattern=PatternType.PREFIXED)
STAR = acl("*")
OTHER = acl("payments")


@pytest.mark.parametrize(
    ("matching", "expected"),
    [
        (AclBindingFilter(), {LITERAL, PREFIX, STAR, OTHER}),
        (AclBindingFilter(T, "orders", PatternType.LITERAL), {LITERAL}),
        (AclBindingFilter(T, "orders", PatternType.ANY), {LITERAL}),
        (AclBindingFilter(T, "orders", PatternType.MATCH), {LITERAL, PREFIX, STAR}),
        (AclBindingFilter(T, "ord", PatternType.PREFIXED), {PREFIX}),
        (AclBindingFilter(T, None, PatternType.PREFIXED), {PREFIX}),
        (AclBindingFilter(ResourceType.GROUP), set()),
        (AclBindingFilter(principal="User:bob"), set()),
        (
            AclBindingFilter(operation=Op.READ, permission_type=ALLOW, host="*"),
            {LITERAL, PREFIX, STAR, OTHER},
        ),
        (AclBindingFilter(operation=Op.WRITE), set()),
    ],
)
def test_filters_match_as_kafkas_acl_binding_filter(
    matching: AclBindingFilter, expected: set[AclBinding]
) -> None:
    a = authorizer([LITERAL, PREFIX, STAR, OTHER])
    assert set(a.acls(matching)) == expected


def test_removing_rebuilds_the_index() -> None:
    a = authorizer([LITERAL, PREFIX])
    a.remove([PREFIX])
    assert may(a, Op.READ) and not may(a, Op.READ, "ordinal")
    a.remove([LITERAL])
    assert len(a) == 0 and not may(a, Op.READ)
