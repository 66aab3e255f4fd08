"""Kafka's ACL model: resource patterns, access control entries, bindings and binding filters.

The codes are Kafka's wire codes (org.apache.kafka.common.acl / .resource), so a binding read
from CreateAcls, kept on disk or sent back in DescribeAcls needs no translation. The filter
semantics (ANY, MATCH, a null name, principal or host) are those of Kafka's AclBindingFilter,
and the checks on a new binding those of Kafka's controller (AclControlManager.validateNewAcl).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final


class ResourceType(IntEnum):
    """org.apache.kafka.common.resource.ResourceType."""

    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    """org.apache.kafka.common.resource.PatternType. ANY and MATCH only appear in filters."""

    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(IntEnum):
    """org.apache.kafka.common.acl.AclOperation."""

    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class PermissionType(IntEnum):
    """org.apache.kafka.common.acl.AclPermissionType."""

    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


WILDCARD: Final = "*"
"""A LITERAL resource name, principal name or host that matches every one."""
WILDCARD_PRINCIPAL: Final = "User:*"
CLUSTER_NAME: Final = "kafka-cluster"
"""The one name of the CLUSTER resource."""


def _member(kind: type[IntEnum], code: int) -> IntEnum:
    try:
        return kind(code)
    except ValueError:
        return kind(0)  # every one of these enums has UNKNOWN = 0, as Kafka's fromCode gives


def resource_type(code: int) -> ResourceType:
    return ResourceType(_member(ResourceType, code))


def pattern_type(code: int) -> PatternType:
    return PatternType(_member(PatternType, code))


def operation(code: int) -> AclOperation:
    return AclOperation(_member(AclOperation, code))


def permission_type(code: int) -> PermissionType:
    return PermissionType(_member(PermissionType, code))


class AclError(ValueError):
    """A binding or filter Kafka refuses with INVALID_REQUEST; the message is Kafka's."""


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One ACL: a resource pattern and an access control entry."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission_type: PermissionType


def validate_binding(binding: AclBinding) -> None:
    """Raise :class:`AclError` for a binding Kafka would not store (AclControlManager and the
    broker's CreateAcls checks, with their messages)."""
    if binding.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        raise AclError(f"Invalid resourceType {binding.resource_type.name}")
    if binding.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        raise AclError(f"Invalid patternType {binding.pattern_type.name}")
    if binding.operation in (AclOperation.UNKNOWN, AclOperation.ANY):
        raise AclError(f"Invalid operation {binding.operation.name}")
    if binding.permission_type not in (PermissionType.ALLOW, PermissionType.DENY):
        raise AclError(f"Invalid permissionType {binding.permission_type.name}")
    if binding.resource_type is ResourceType.CLUSTER and binding.resource_name != CLUSTER_NAME:
        raise AclError(f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}")
    if not binding.resource_name:
        raise AclError("Invalid empty resource name")
    check_principal(binding.principal)


def check_principal(principal: str) -> None:
    """A principal is ``Type:name`` (Kafka's SecurityUtils.parseKafkaPrincipal)."""
    if ":" not in principal:
        raise AclError(
            f"expected a string in format principalType:principalName but got {principal}"
        )


@dataclass(frozen=True, slots=True)
class AclBindingFilter:
    """Which bindings DescribeAcls lists and DeleteAcls removes.

    ANY in a code field, and None in a text field, matches every value. A MATCH pattern type
    with a name matches the bindings that would apply to a resource of that name: the LITERAL
    one of that name, the LITERAL ``*``, and every PREFIXED one that is a prefix of it.
    """

    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: AclOperation = AclOperation.ANY
    permission_type: PermissionType = PermissionType.ANY

    def unknown_part(self) -> str | None:
        """ "patternFilter" or "entryFilter" when either holds an UNKNOWN code, as Kafka's
        AclControlManager.validateFilter words it; None when the filter can be used."""
        if ResourceType.UNKNOWN is self.resource_type or PatternType.UNKNOWN is self.pattern_type:
            return "patternFilter"
        if AclOperation.UNKNOWN is self.operation or PermissionType.UNKNOWN is self.permission_type:
            return "entryFilter"
        return None

    def matches(self, binding: AclBinding) -> bool:
        return self._matches_pattern(binding) and self._matches_entry(binding)

    def _matches_pattern(self, binding: AclBinding) -> bool:
        kind = self.resource_type
        if kind is not ResourceType.ANY and kind is not binding.resource_type:
            return False
        pattern = self.pattern_type
        if pattern not in (PatternType.ANY, PatternType.MATCH) and pattern is not (
            binding.pattern_type
        ):
            return False
        name = self.resource_name
        if name is None:
            return True
        if pattern is PatternType.ANY or pattern is binding.pattern_type:
            return name == binding.resource_name
        # MATCH: the bindings that apply to a resource called ``name``.
        if binding.pattern_type is PatternType.LITERAL:
            return name == binding.resource_name or binding.resource_name == WILDCARD
        return name.startswith(binding.resource_name)

    def _matches_entry(self, binding: AclBinding) -> bool:
        if self.principal is not None and self.principal != binding.principal:
            return False
        if self.host is not None and self.host != binding.host:
            return False
        if self.operation is not AclOperation.ANY and self.operation is not binding.operation:
            return False
        return (
            self.permission_type is PermissionType.ANY
            or self.permission_type is binding.permission_type
        )


MATCH_ALL: Final = AclBindingFilter()
"""The filter that every binding matches."""
