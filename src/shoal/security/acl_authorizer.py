"""The authorizer: decides as Kafka's StandardAuthorizer (StandardAuthorizerData) does.

For one principal, client host, operation and resource:

1. a super user (``super.users``) may do anything;
2. the ACLs that apply to the resource are the LITERAL one of its name, the LITERAL ``*`` and
   every PREFIXED one whose name is a prefix of it; of those, the ones whose principal is the
   request's or ``User:*`` and whose host is the client's or ``*`` match, if their operation
   does (ALL matches every operation; an ALLOW of Read, Write, Delete or Alter also grants
   Describe, and of AlterConfigs also DescribeConfigs; a DENY denies only its own operation
   or, with ALL, every one);
3. a matching DENY wins; else a matching ALLOW allows;
4. else, if no ACL at all applies to the resource (whoever it names), the answer is
   ``allow.everyone.if.no.acl.found`` (default false); otherwise denied.

The ACLs are indexed by resource type and name, so a decision costs a few dict lookups (one
per distinct PREFIXED name length) and a scan of the handful of ACLs on the resource: it is
on the Produce and Fetch path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from shoal.security.acl import (
    WILDCARD,
    WILDCARD_PRINCIPAL,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    PatternType,
    PermissionType,
    ResourceType,
    check_principal,
)

_IMPLIES_DESCRIBE: Final = frozenset(
    {
        AclOperation.DESCRIBE,
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.DELETE,
        AclOperation.ALTER,
    }
)
_IMPLIES_DESCRIBE_CONFIGS: Final = frozenset(
    {AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}
)

SUPPORTED_OPERATIONS: Final[dict[ResourceType, tuple[AclOperation, ...]]] = {
    # Kafka's AclEntry.supportedOperations: what the authorized-operations fields report on.
    ResourceType.TOPIC: (
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.CREATE,
        AclOperation.DESCRIBE,
        AclOperation.DELETE,
        AclOperation.ALTER,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS,
    ),
    ResourceType.GROUP: (
        AclOperation.READ,
        AclOperation.DESCRIBE,
        AclOperation.DELETE,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS,
    ),
    ResourceType.CLUSTER: (
        AclOperation.CREATE,
        AclOperation.CLUSTER_ACTION,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS,
        AclOperation.IDEMPOTENT_WRITE,
        AclOperation.ALTER,
        AclOperation.DESCRIBE,
    ),
    ResourceType.TRANSACTIONAL_ID: (AclOperation.DESCRIBE, AclOperation.WRITE),
    ResourceType.DELEGATION_TOKEN: (AclOperation.DESCRIBE,),
    ResourceType.USER: (AclOperation.CREATE_TOKENS, AclOperation.DESCRIBE_TOKENS),
}

_BY_RESOURCE_TYPE_PROBE: Final = "hardcode"
"""The resource name Kafka's Authorizer.authorizeByResourceType first asks about, so that super
users (and allow.everyone.if.no.acl.found) are answered before the ACLs are searched."""


def parse_super_users(value: str) -> frozenset[str]:
    """Kafka's ``super.users``: principals separated by semicolons, blanks ignored."""
    users = frozenset(part.strip() for part in value.split(";") if part.strip())
    for user in users:
        check_principal(user)
    return users


@dataclass(frozen=True, slots=True)
class AuthorizerConfig:
    """The settings of Kafka's StandardAuthorizer."""

    super_users: frozenset[str] = field(default_factory=frozenset)
    allow_everyone_if_no_acl_found: bool = False


def _grants(acl: AclBinding, operation: AclOperation) -> bool:
    """Whether ``acl`` (whose principal and host match) speaks to ``operation``."""
    if acl.operation is AclOperation.ALL:
        return True
    if acl.permission_type is PermissionType.ALLOW:
        if operation is AclOperation.DESCRIBE:
            return acl.operation in _IMPLIES_DESCRIBE
        if operation is AclOperation.DESCRIBE_CONFIGS:
            return acl.operation in _IMPLIES_DESCRIBE_CONFIGS
    return acl.operation is operation


class Authorizer:
    """The ACLs in memory, indexed, and the decisions made from them."""

    def __init__(self, config: AuthorizerConfig, bindings: Iterable[AclBinding] = ()) -> None:
        self.config = config
        self._bindings: dict[AclBinding, None] = {}
        """Every ACL, once each, in the order added (a dict as an ordered set)."""
        self._literal: dict[tuple[ResourceType, str], list[AclBinding]] = {}
        self._prefixed: dict[tuple[ResourceType, str], list[AclBinding]] = {}
        self._prefix_lengths: dict[ResourceType, list[int]] = {}
        """The distinct lengths of the PREFIXED names per resource type: a name is checked
        against those prefixes of it only."""
        self.add(bindings)

    # -- the ACL set --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._bindings)

    def __iter__(self) -> Iterator[AclBinding]:
        return iter(self._bindings)

    def __contains__(self, binding: object) -> bool:
        return binding in self._bindings

    def add(self, bindings: Iterable[AclBinding]) -> None:
        """Add ACLs (one already present is not added twice)."""
        for binding in bindings:
            if binding in self._bindings:
                continue
            self._bindings[binding] = None
            key = (binding.resource_type, binding.resource_name)
            if binding.pattern_type is PatternType.PREFIXED:
                self._prefixed.setdefault(key, []).append(binding)
                lengths = self._prefix_lengths.setdefault(binding.resource_type, [])
                if len(binding.resource_name) not in lengths:
                    lengths.append(len(binding.resource_name))
                    lengths.sort()
            else:
                self._literal.setdefault(key, []).append(binding)

    def remove(self, bindings: Iterable[AclBinding]) -> None:
        """Remove ACLs; one that is not present is ignored."""
        gone = {b for b in bindings if b in self._bindings}
        if not gone:
            return
        kept = [b for b in self._bindings if b not in gone]
        self._bindings.clear()
        self._literal.clear()
        self._prefixed.clear()
        self._prefix_lengths.clear()
        self.add(kept)

    def acls(self, matching: AclBindingFilter) -> list[AclBinding]:
        return [b for b in self._bindings if matching.matches(b)]

    # -- decisions ------------------------------------------------------------------------

    def authorize(
        self,
        principal: str,
        host: str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: str,
    ) -> bool:
        """Whether ``principal`` connected from ``host`` may do ``operation`` on the resource
        ``resource_type`` called ``name`` (a LITERAL name, as Kafka's Action has)."""
        if principal in self.config.super_users:
            return True
        found_any = False
        allowed = False
        for acls in self._applicable(resource_type, name):
            found_any = True
            for acl in acls:
                if acl.principal != principal and acl.principal != WILDCARD_PRINCIPAL:
                    continue
                if acl.host != WILDCARD and acl.host != host:
                    continue
                if not _grants(acl, operation):
                    continue
                if acl.permission_type is PermissionType.DENY:
                    return False
                allowed = True
        if allowed:
            return True
        return not found_any and self.config.allow_everyone_if_no_acl_found

    def _applicable(self, resource_type: ResourceType, name: str) -> Iterator[list[AclBinding]]:
        """The lists of ACLs that apply to the resource: LITERAL of its name, LITERAL ``*``,
        PREFIXED of each prefix of its name."""
        literal = self._literal.get((resource_type, name))
        if literal:
            yield literal
        if name != WILDCARD:
            wildcard = self._literal.get((resource_type, WILDCARD))
            if wildcard:
                yield wildcard
        for length in self._prefix_lengths.get(resource_type, ()):
            if length > len(name):
                break
            prefixed = self._prefixed.get((resource_type, name[:length]))
            if prefixed:
                yield prefixed

    def authorize_by_resource_type(
        self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        """Whether ``principal`` may do ``operation`` on at least one resource of the type:
        Kafka's Authorizer.authorizeByResourceType (used where an operation on the cluster
        may be replaced by the same right on any topic, as IdempotentWrite by Write, KIP-679).

        Note that it matches operations exactly (no implied Describe) as Kafka's does.
        """
        if self.authorize(principal, host, operation, resource_type, _BY_RESOURCE_TYPE_PROBE):
            return True
        deny_literal: set[str] = set()
        deny_prefixed: set[str] = set()
        allow: list[tuple[PatternType, str]] = []
        wildcard_allow = False
        for acl in self._bindings:
            if acl.resource_type is not resource_type:
                continue
            if acl.host != host and acl.host != WILDCARD:
                continue
            if acl.principal != principal and acl.principal != WILDCARD_PRINCIPAL:
                continue
            if acl.operation is not operation and acl.operation is not AclOperation.ALL:
                continue
            literal = acl.pattern_type is PatternType.LITERAL
            if acl.permission_type is PermissionType.DENY:
                if literal and acl.resource_name == WILDCARD:
                    return False
                (deny_literal if literal else deny_prefixed).add(acl.resource_name)
            elif literal and acl.resource_name == WILDCARD:
                wildcard_allow = True  # counts only if no wildcard DENY comes later
            else:
                allow.append((acl.pattern_type, acl.resource_name))
        if wildcard_allow:
            return True
        for pattern, name in allow:
            if pattern is PatternType.LITERAL and name in deny_literal:
                continue
            if not any(name[:n] in deny_prefixed for n in range(1, len(name) + 1)):
                return True
        return False

    def authorized_operations(
        self, principal: str, host: str, resource_type: ResourceType, name: str
    ) -> int:
        """KIP-430's bit set: bit N for each supported operation N the principal may do."""
        bits = 0
        for op in SUPPORTED_OPERATIONS[resource_type]:
            if self.authorize(principal, host, op, resource_type, name):
                bits |= 1 << op
        return bits
