"""ACLs and SCRAM users changed from the console: create and delete one ACL, set and delete a
user's SCRAM credential.

Authorized as the Kafka APIs that do the same are: Alter on the cluster (CreateAcls,
DeleteAcls, AlterUserScramCredentials). Without an authorizer the ACL routes answer 409
``security_disabled`` (Kafka's SECURITY_DISABLED). A password crosses the API once (HTTPS or
the loopback address, behind http_auth like every route) and is kept only as its SCRAM
credential, salted here as a Kafka client salts it for AlterUserScramCredentials.
"""

from __future__ import annotations

import asyncio
from enum import IntEnum
from typing import Any, Final, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shoal.broker.acls import AclOutcome, BrokerAcls
from shoal.broker.broker import Broker
from shoal.broker.context import RequestContext
from shoal.protocol import ErrorCode
from shoal.security.acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    PatternType,
    PermissionType,
    ResourceType,
)
from shoal.security.scram import (
    ALGORITHMS,
    ITERATIONS_MAX,
    ITERATIONS_MIN,
    ScramAlgorithm,
    new_credential,
)
from shoal.security.scram_store import INTERNAL_USER, Deletion, Upsertion
from shoal.server.admin.errors import ApiError
from shoal.server.admin.params import field, field_or, json_object
from shoal.storage import StorageError

DEFAULT_ITERATIONS: Final = 8192
"""kafka-configs' default for ``SCRAM-SHA-*=[iterations=...,password=...]`` is 4096 (the
minimum); shoal's CLI and console use 8192 (``shoal user``)."""


def _require_cluster_alter(broker: Broker, ctx: RequestContext, what: str) -> None:
    if not broker.authorize_cluster(ctx, AclOperation.ALTER):
        raise ApiError(
            403,
            "cluster_authorization_failed",
            f"{ctx.principal} may not ALTER the cluster, which {what} needs",
        )


E = TypeVar("E", bound=IntEnum)


def _enum_field(body: dict[str, Any], name: str, kind: type[E], allowed: tuple[str, ...]) -> E:
    value = field(body, name, str)
    if value is None or value.upper() not in allowed:
        raise ApiError(400, "invalid_field", f"'{name}' must be one of {', '.join(allowed)}")
    return kind[value.upper()]


_RESOURCE_TYPES: Final = (
    "TOPIC",
    "GROUP",
    "CLUSTER",
    "TRANSACTIONAL_ID",
    "DELEGATION_TOKEN",
    "USER",
)
_PATTERN_TYPES: Final = ("LITERAL", "PREFIXED")
_OPERATIONS: Final = tuple(
    op.name for op in AclOperation if op not in (AclOperation.UNKNOWN, AclOperation.ANY)
)
_PERMISSIONS: Final = ("ALLOW", "DENY")


def _binding(body: dict[str, Any]) -> AclBinding:
    """One ACL as ``{"resource_type", "resource_name", "pattern_type"?, "principal", "host"?,
    "operation", "permission_type"?}`` (LITERAL, every host ``*`` and ALLOW by default)."""
    name = field(body, "resource_name", str)
    principal = field(body, "principal", str)
    if not name or not principal:
        raise ApiError(400, "invalid_field", "'resource_name' and 'principal' are required")
    body.setdefault("pattern_type", "LITERAL")
    body.setdefault("permission_type", "ALLOW")
    return AclBinding(
        resource_type=_enum_field(body, "resource_type", ResourceType, _RESOURCE_TYPES),
        resource_name=name,
        pattern_type=_enum_field(body, "pattern_type", PatternType, _PATTERN_TYPES),
        principal=principal,
        host=_host(body),
        operation=_enum_field(body, "operation", AclOperation, _OPERATIONS),
        permission_type=_enum_field(body, "permission_type", PermissionType, _PERMISSIONS),
    )


def _host(body: dict[str, Any]) -> str:
    """An empty host is valid to Kafka but matches no client: a form left blank, refused
    here as ``shoal console`` refuses it (``*`` is every host)."""
    host = field_or(body, "host", str, "*")
    if not host:
        raise ApiError(400, "invalid_field", "'host' must be a non-empty string (* for any host)")
    return host


def _row(acl: AclBinding) -> dict[str, str]:
    return {
        "resource_type": acl.resource_type.name,
        "resource_name": acl.resource_name,
        "pattern_type": acl.pattern_type.name,
        "principal": acl.principal,
        "host": acl.host,
        "operation": acl.operation.name,
        "permission_type": acl.permission_type.name,
    }


async def _acls_or_refuse(
    broker: Broker, ctx: RequestContext, request: Request, what: str
) -> tuple[BrokerAcls, AclBinding]:
    # Authorized first, as CreateAcls and DeleteAcls are: whoever may not change ACLs learns
    # nothing from how their body would have been judged.
    _require_cluster_alter(broker, ctx, what)
    if broker.acls is None:
        raise ApiError(409, "security_disabled", "No Authorizer is configured on the broker")
    return broker.acls, _binding(await json_object(request))


async def create_acl(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    """Add one ACL (as CreateAcls); present already is success again, as in Kafka."""
    acls, binding = await _acls_or_refuse(broker, ctx, request, "creating ACLs")
    [outcome] = await acls.create_off_loop([binding])
    if outcome.error_code != ErrorCode.NONE:
        raise _refusal(outcome)
    return JSONResponse({"acl": _row(binding)}, status_code=201)


async def delete_acl(broker: Broker, ctx: RequestContext, request: Request) -> Response:
    """Remove exactly the ACL the body names (a DeleteAcls filter with every field given):
    404 when there is none such."""
    acls, binding = await _acls_or_refuse(broker, ctx, request, "deleting ACLs")
    exact = AclBindingFilter(
        resource_type=binding.resource_type,
        resource_name=binding.resource_name,
        pattern_type=binding.pattern_type,
        principal=binding.principal,
        host=binding.host,
        operation=binding.operation,
        permission_type=binding.permission_type,
    )
    if not acls.describe(exact):
        raise ApiError(404, "acl_not_found", "no such ACL: nothing deleted")
    [outcome] = await acls.delete_off_loop([exact])
    if outcome.error_code != ErrorCode.NONE:
        raise _refusal(outcome)
    return JSONResponse({"deleted": [_row(b) for b in outcome.bindings]})


def _refusal(outcome: AclOutcome) -> ApiError:
    """400 for what was wrong with the request; 503 when the broker could not save (nothing
    changed, the same request may succeed later)."""
    status = 503 if outcome.error_code == ErrorCode.KAFKA_STORAGE_ERROR else 400
    code = ErrorCode(outcome.error_code).name.lower()
    return ApiError(status, code, outcome.error_message or "")


async def _apply_credentials(
    broker: Broker, upsertions: list[Upsertion], deletions: list[Deletion]
) -> None:
    """Save and apply on a worker thread (the save blocks); 503 when it cannot be saved."""
    try:
        await asyncio.to_thread(broker.scram_credentials.apply, upsertions, deletions)
    except (OSError, StorageError) as exc:
        raise ApiError(
            503, "kafka_storage_error", f"could not save the credentials: {exc}"
        ) from None


def _user_name(name: str) -> str:
    if not name:
        raise ApiError(400, "unacceptable_credential", "Username must not be empty")
    if name == INTERNAL_USER:
        raise ApiError(
            400, "unacceptable_credential", f"{INTERNAL_USER} is reserved for shoal itself"
        )
    return name


def _mechanism(value: str | None) -> ScramAlgorithm:
    algorithm = ALGORITHMS.get(value or "")
    if algorithm is None:
        raise ApiError(
            400, "unsupported_sasl_mechanism", f"'mechanism' must be one of {', '.join(ALGORITHMS)}"
        )
    return algorithm


async def set_user(broker: Broker, ctx: RequestContext, user: str, request: Request) -> Response:
    """``{"mechanism", "password", "iterations"?}``: add or replace the user's credential for
    that mechanism (as AlterUserScramCredentials' upsertion)."""
    _require_cluster_alter(broker, ctx, "changing SCRAM credentials")  # before any validation
    body = await json_object(request)
    name = _user_name(user)
    algorithm = _mechanism(field(body, "mechanism", str))
    password = field(body, "password", str)
    if not password:
        raise ApiError(400, "invalid_field", "'password' is required")
    iterations = field_or(body, "iterations", int, DEFAULT_ITERATIONS)
    if not ITERATIONS_MIN <= iterations <= ITERATIONS_MAX:
        raise ApiError(
            400,
            "unacceptable_credential",
            f"iterations must be within [{ITERATIONS_MIN}, {ITERATIONS_MAX}]",
        )
    # Salting (thousands of HMAC rounds) and the save (a write and an fsync) block: on a
    # worker thread, off the event loop the Kafka listener shares.
    credential = await asyncio.to_thread(new_credential, algorithm, password, iterations)
    upsertion = Upsertion(name, algorithm, credential)
    await _apply_credentials(broker, [upsertion], [])
    return JSONResponse({"user": name, "mechanism": algorithm.name, "iterations": iterations})


async def delete_user(
    broker: Broker, ctx: RequestContext, user: str, mechanism: str | None
) -> Response:
    """Delete the user's credential for ``mechanism`` (a query parameter): 404 when the user
    has none (Kafka's RESOURCE_NOT_FOUND)."""
    _require_cluster_alter(broker, ctx, "changing SCRAM credentials")  # before any validation
    name = _user_name(user)
    algorithm = _mechanism(mechanism)
    store = broker.scram_credentials
    if store.get(name, algorithm) is None:
        raise ApiError(
            404,
            "resource_not_found",
            f"user {name!r} has no {algorithm.name} credential: nothing deleted",
        )
    await _apply_credentials(broker, [], [Deletion(name, algorithm)])
    return JSONResponse({"user": name, "mechanism": algorithm.name, "deleted": True})
