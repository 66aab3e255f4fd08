"""DescribeUserScramCredentials (50): each user's SCRAM mechanisms and iterations, never the
salts or keys. As Kafka's ScramImage answers: no names (null or empty) lists every user; a
name given twice is DUPLICATE_RESOURCE, an unknown one RESOURCE_NOT_FOUND, each per user."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation
from shoal.security.scram import ALGORITHMS

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class _UserName(Protocol):
    name: str


class _DescribeRequest(Protocol):
    users: Sequence[_UserName] | None


async def handle_describe_user_scram_credentials(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header = request.header
    if not broker.authorize_cluster(ctx, AclOperation.DESCRIBE):
        # Kafka's answer: the top-level error, no results.
        return response_for(
            header.api_key,
            header.api_version,
            {
                "throttle_time": 0,
                "error_code": ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                "error_message": None,
                "results": [],
            },
        )
    store = broker.scram_credentials
    body = request_body(request.body, _DescribeRequest)
    asked = body.users
    duplicated: dict[str, bool] = {}
    if not asked:
        duplicated = dict.fromkeys(store.users(), False)
    else:
        for entry in asked:
            duplicated[entry.name] = entry.name in duplicated
    results: list[dict[str, Any]] = []
    for user, twice in duplicated.items():
        if twice:
            results.append(
                {
                    "user": user,
                    "error_code": ErrorCode.DUPLICATE_RESOURCE,
                    "error_message": "Cannot describe SCRAM credentials for the same user twice "
                    f"in a single request: {user}",
                }
            )
            continue
        mechanisms = store.mechanisms_of(user)
        if not mechanisms:
            results.append(
                {
                    "user": user,
                    "error_code": ErrorCode.RESOURCE_NOT_FOUND,
                    "error_message": "Attempt to describe a user credential that does not "
                    f"exist: {user}",
                }
            )
            continue
        results.append(
            {
                "user": user,
                "error_code": ErrorCode.NONE,
                "error_message": "",  # as Kafka 4.4 answers (the field's default), not null
                "credential_infos": [
                    {"mechanism": ALGORITHMS[name].type_id, "iterations": iterations}
                    for name, iterations in sorted(mechanisms.items())
                ],
            }
        )
    return response_for(
        header.api_key,
        header.api_version,
        {"throttle_time": 0, "error_code": ErrorCode.NONE, "results": results},
    )
