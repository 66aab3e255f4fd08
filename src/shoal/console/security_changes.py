"""ACL and SCRAM user changes through Kafka's Admin API (CreateAcls, DeleteAcls,
AlterUserScramCredentials): the console process's side of ``POST``/``DELETE /api/v1/acls`` and
``PUT``/``DELETE /api/v1/users/{user}``, with the broker-served API's bodies and answers."""

from __future__ import annotations

from typing import Any, Final

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from shoal.console.errors import ConsoleError

DEFAULT_ITERATIONS: Final = 8192
"""As the broker-served API (and ``shoal user``)."""
ITERATIONS_RANGE: Final = (4096, 16384)
"""Kafka's bounds on SCRAM iterations (ScramFormatter)."""
_RESOURCE_TYPES: Final = (
    "TOPIC",
    "GROUP",
    "CLUSTER",
    "TRANSACTIONAL_ID",
    "DELEGATION_TOKEN",
    "USER",
)
_OPERATIONS: Final = tuple(op.name for op in AclOperation if op.name not in ("UNKNOWN", "ANY"))
_MECHANISMS: Final = {"SCRAM-SHA-256": "SCRAM_SHA_256", "SCRAM-SHA-512": "SCRAM_SHA_512"}


def _text(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value:
        raise ConsoleError(400, "invalid_field", f"'{name}' must be a non-empty string")
    return value


def _choice(
    body: dict[str, Any], name: str, kind: Any, allowed: tuple[str, ...], default: str | None = None
) -> Any:
    value = body.get(name, default)
    if not isinstance(value, str) or value.upper() not in allowed:
        raise ConsoleError(400, "invalid_field", f"'{name}' must be one of {', '.join(allowed)}")
    return kind[value.upper()]


def binding(body: dict[str, Any]) -> AclBinding:
    """The broker-served API's ACL body as a librdkafka binding."""
    return AclBinding(
        _choice(body, "resource_type", ResourceType, _RESOURCE_TYPES),
        _text(body, "resource_name"),
        _choice(body, "pattern_type", ResourcePatternType, ("LITERAL", "PREFIXED"), "LITERAL"),
        _text(body, "principal"),
        _text(body, "host", "*"),
        _choice(body, "operation", AclOperation, _OPERATIONS),
        _choice(body, "permission_type", AclPermissionType, ("ALLOW", "DENY"), "ALLOW"),
    )


def row(acl: Any) -> dict[str, str]:
    return {
        "resource_type": acl.restype.name,
        "resource_name": acl.name,
        "pattern_type": acl.resource_pattern_type.name,
        "principal": acl.principal,
        "host": acl.host,
        "operation": acl.operation.name,
        "permission_type": acl.permission_type.name,
    }


def exact_filter(acl: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(
        acl.restype,
        acl.name,
        acl.resource_pattern_type,
        acl.principal,
        acl.host,
        acl.operation,
        acl.permission_type,
    )


def mechanism(name: str | None) -> Any:
    if name not in _MECHANISMS:
        raise ConsoleError(
            400,
            "unsupported_sasl_mechanism",
            f"'mechanism' must be one of {', '.join(_MECHANISMS)}",
        )
    return ScramMechanism[_MECHANISMS[name]]


def user_name(name: str) -> str:
    if not name:
        raise ConsoleError(400, "unacceptable_credential", "Username must not be empty")
    return name


def upsertion(user: str, body: dict[str, Any]) -> tuple[Any, int]:
    """The upsertion ``{"mechanism", "password", "iterations"?}`` asks for (librdkafka salts
    the password), with its iterations."""
    chosen = mechanism(body.get("mechanism"))
    password = _text(body, "password")
    iterations = body.get("iterations", DEFAULT_ITERATIONS)
    low, high = ITERATIONS_RANGE
    if (
        not isinstance(iterations, int)
        or isinstance(iterations, bool)
        or not low <= iterations <= high
    ):
        raise ConsoleError(
            400, "unacceptable_credential", f"iterations must be within [{low}, {high}]"
        )
    info = ScramCredentialInfo(chosen, iterations)
    return UserScramCredentialUpsertion(user_name(user), info, password.encode()), iterations


def deletion(user: str, name: str | None) -> Any:
    return UserScramCredentialDeletion(user_name(user), mechanism(name))
