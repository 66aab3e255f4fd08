"""What the three ACL handlers (CreateAcls, DescribeAcls, DeleteAcls) share: reading bindings
and filters from their requests, and the answer when no authorizer is configured."""

from __future__ import annotations

from typing import Final, Protocol

from shoal.security.acl import (
    AclBinding,
    AclBindingFilter,
    operation,
    pattern_type,
    permission_type,
    resource_type,
)

NO_AUTHORIZER: Final = "No Authorizer is configured on the broker"
"""Kafka's message with SECURITY_DISABLED (DescribeAcls; Create/DeleteAcls say it shorter)."""


class AclCreationFields(Protocol):
    resource_type: int
    resource_name: str
    resource_pattern_type: int
    principal: str
    host: str
    operation: int
    permission_type: int


class AclFilterFields(Protocol):
    resource_type_filter: int
    resource_name_filter: str | None
    pattern_type_filter: int
    principal_filter: str | None
    host_filter: str | None
    operation: int
    permission_type: int


def binding_of(creation: AclCreationFields) -> AclBinding:
    """The binding a CreateAcls creation asks for; codes Kafka does not know read as UNKNOWN,
    which the validation then refuses."""
    return AclBinding(
        resource_type=resource_type(creation.resource_type),
        resource_name=creation.resource_name,
        pattern_type=pattern_type(creation.resource_pattern_type),
        principal=creation.principal,
        host=creation.host,
        operation=operation(creation.operation),
        permission_type=permission_type(creation.permission_type),
    )


def filter_of(body: AclFilterFields) -> AclBindingFilter:
    return AclBindingFilter(
        resource_type=resource_type(body.resource_type_filter),
        resource_name=body.resource_name_filter,
        pattern_type=pattern_type(body.pattern_type_filter),
        principal=body.principal_filter,
        host=body.host_filter,
        operation=operation(body.operation),
        permission_type=permission_type(body.permission_type),
    )
