"""AlterUserScramCredentials (51): add, replace and delete SCRAM credentials, as Kafka's
ScramControlManager does.

The client sends the salt and the salted password (Hi(password, salt, i)), never the password;
the broker keeps the stored key and server key derived from them. Per user: a user named twice
in one request (deletion or upsertion) is DUPLICATE_RESOURCE and none of its changes apply; an
empty name or too few / too many iterations is UNACCEPTABLE_CREDENTIAL; an unknown mechanism is
UNSUPPORTED_SASL_MECHANISM; deleting a credential that does not exist is RESOURCE_NOT_FOUND.
The accepted changes are saved together before the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation
from shoal.security.scram import (
    ALGORITHMS_BY_TYPE,
    ITERATIONS_MAX,
    ITERATIONS_MIN,
    credential_from_salted,
)
from shoal.security.scram_store import INTERNAL_USER, Deletion, Upsertion
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

log = logging.getLogger(__name__)
_TWICE = "A user credential cannot be altered twice in the same request"


class _Deletion(Protocol):
    name: str
    mechanism: int


class _Upsertion(Protocol):
    name: str
    mechanism: int
    iterations: int
    salt: bytes
    salted_password: bytes


class _AlterRequest(Protocol):
    deletions: Sequence[_Deletion]
    upsertions: Sequence[_Upsertion]


async def handle_alter_user_scram_credentials(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _AlterRequest)
    if not broker.authorize_cluster(ctx, AclOperation.ALTER):
        # Kafka's answer: every user named is refused, nothing changes.
        names = dict.fromkeys(e.name for e in [*body.deletions, *body.upsertions])
        refused = [
            {
                "user": name,
                "error_code": ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                "error_message": None,
            }
            for name in names
        ]
        return response_for(
            header.api_key, header.api_version, {"throttle_time": 0, "results": refused}
        )
    store = broker.scram_credentials
    errors: dict[str, tuple[ErrorCode, str]] = {}
    deletions: dict[str, Deletion] = {}
    upsertions: dict[str, Upsertion] = {}
    for entry in body.deletions:
        name = entry.name
        if name in errors:
            continue
        if deletions.pop(name, None) is not None:
            errors[name] = (ErrorCode.DUPLICATE_RESOURCE, _TWICE)
            continue
        algorithm = ALGORITHMS_BY_TYPE.get(int(entry.mechanism))
        problem = _check_name_and_mechanism(name, algorithm is not None)
        if problem is None and algorithm is not None and store.get(name, algorithm) is None:
            problem = (
                ErrorCode.RESOURCE_NOT_FOUND,
                "Attempt to delete a user credential that does not exist",
            )
        if problem is not None:
            errors[name] = problem
        elif algorithm is not None:
            deletions[name] = Deletion(name, algorithm)
    for entry in body.upsertions:
        name = entry.name
        if name in errors:
            continue
        if deletions.pop(name, None) is not None or upsertions.pop(name, None) is not None:
            errors[name] = (ErrorCode.DUPLICATE_RESOURCE, _TWICE)
            continue
        algorithm = ALGORITHMS_BY_TYPE.get(int(entry.mechanism))
        iterations = int(entry.iterations)
        problem = _check_upsertion(name, algorithm is not None, iterations)
        if problem is not None:
            errors[name] = problem
        elif algorithm is not None:
            salt, salted = bytes(entry.salt), bytes(entry.salted_password)
            credential = credential_from_salted(algorithm, salted, salt, iterations)
            upsertions[name] = Upsertion(name, algorithm, credential)
    saved: tuple[ErrorCode, str | None] = (ErrorCode.NONE, None)
    if deletions or upsertions:
        # The save (a write and an fsync) on a worker thread, off the event loop every
        # connection shares; the store takes one change at a time (issue 17).
        try:
            await asyncio.to_thread(
                store.apply, list(upsertions.values()), list(deletions.values())
            )
        except (OSError, StorageError) as exc:
            # Nothing changed (the store saves before it swaps): each user is told, and the
            # connection stays open, rather than a dropped connection the client retries.
            log.error("could not save the SCRAM credentials: %s", exc)
            saved = (ErrorCode.KAFKA_STORAGE_ERROR, f"could not save the credentials: {exc}")
    results: list[dict[str, Any]] = [
        {"user": name, "error_code": saved[0], "error_message": saved[1]}
        for name in [*deletions, *upsertions]
    ]
    results.extend(
        {"user": name, "error_code": code, "error_message": message}
        for name, (code, message) in errors.items()
    )
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "results": results}
    )


def _refused(api_key: int, api_version: int, body: _AlterRequest) -> ResponseBody:
    """Kafka's answer without Alter on the cluster: every user named is refused, nothing
    changes."""
    names = dict.fromkeys(entry.name for entry in [*body.deletions, *body.upsertions])
    refused = [
        {"user": name, "error_code": ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "error_message": None}
        for name in names
    ]
    return response_for(api_key, api_version, {"throttle_time": 0, "results": refused})


def _check_upsertion(name: str, known: bool, iterations: int) -> tuple[ErrorCode, str] | None:
    problem = _check_name_and_mechanism(name, known)
    if problem is None and iterations < ITERATIONS_MIN:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"
    if problem is None and iterations > ITERATIONS_MAX:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"
    return problem


def _check_name_and_mechanism(name: str, known: bool) -> tuple[ErrorCode, str] | None:
    if not name:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    if name == INTERNAL_USER:
        # shoal's own clients log in under it, and the authorizer counts it a super user.
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, f"{INTERNAL_USER} is reserved for shoal itself"
    if not known:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    return None
