"""FindCoordinator (10): this broker coordinates every consumer group.

Key type 0 (group): the answer is this broker, for any key (batched in v4+). As Kafka creates
``__consumer_offsets`` on the first such request, this registers it (clients see it from then
on, see :mod:`shoal.broker.internal_topics`); key type 1 does the same for
``__transaction_state``.

Key type 1 (transaction): this broker too, the transaction coordinator of every transactional
id (see :mod:`shoal.broker.transactions`). Other key types (e.g. share groups) get
INVALID_REQUEST.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.coordinator.offsets_log import OFFSETS_TOPIC
from shoal.coordinator.txn_log import TXN_STATE_TOPIC
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

log = logging.getLogger(__name__)

KEY_TYPE_GROUP: Final = 0
KEY_TYPE_TRANSACTION: Final = 1


class _FindCoordinatorRequest(Protocol):
    """Every field is of some versions only (key v0-v3, key_type v1+, coordinator_keys v4+):
    all are read with getattr."""


async def handle_find_coordinator(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _FindCoordinatorRequest)
    key_type = int(getattr(body, "key_type", KEY_TYPE_GROUP))
    keys = list(getattr(body, "coordinator_keys", ()) or ())
    key = getattr(body, "key", None)
    if not keys and key is not None:
        keys = [key]
    answer = _answer(broker, key_type, ctx.listener_name)
    # Describe on each key's group (or transactional id), as Kafka: a key it may not describe
    # is answered with that error, and no internal topic is created for it.
    refusal = _REFUSALS.get(key_type)
    allowed = [
        k
        for k in keys
        if refusal is None or broker.authorize(ctx, AclOperation.DESCRIBE, refusal[0], k)
    ]
    if keys and not allowed and refusal is not None:
        answer = _unavailable(refusal[1], refusal[1].message)
    elif key_type in _INTERNAL_TOPIC:
        internal = _INTERNAL_TOPIC[key_type]
        try:
            broker.ensure_internal_topic(internal)
        except (StorageError, OSError) as exc:
            # Kafka answers this while it creates the topic; the client asks again.
            log.error("could not register %s: %s", internal, exc)
            answer = _unavailable(ErrorCode.COORDINATOR_NOT_AVAILABLE, str(exc))
    values: dict[str, Any] = {"throttle_time": 0, **answer}
    denied = _unavailable(refusal[1], refusal[1].message) if refusal is not None else answer
    values["coordinators"] = [
        {"key": k, **(answer if k in allowed or refusal is None else denied)} for k in keys
    ]
    return response_for(header.api_key, header.api_version, values)


_INTERNAL_TOPIC: Final = {KEY_TYPE_GROUP: OFFSETS_TOPIC, KEY_TYPE_TRANSACTION: TXN_STATE_TOPIC}
"""The internal topic Kafka creates on the first FindCoordinator of each key type."""

_REFUSALS: Final = {
    KEY_TYPE_GROUP: (ResourceType.GROUP, ErrorCode.GROUP_AUTHORIZATION_FAILED),
    KEY_TYPE_TRANSACTION: (
        ResourceType.TRANSACTIONAL_ID,
        ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ),
}
"""What a key of each type needs Describe on, and the error when the principal lacks it."""


def _answer(broker: Broker, key_type: int, listener_name: str) -> dict[str, Any]:
    if key_type in (KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION):
        # The coordinator's address on the listener the request came in on.
        host, port = broker.config.advertised_address(listener_name)
        return {
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "node_id": broker.config.node_id,
            "host": host,
            "port": port,
        }
    return _unavailable(ErrorCode.INVALID_REQUEST, f"unknown coordinator key type {key_type}")


def _unavailable(code: int, message: str) -> dict[str, Any]:
    return {"error_code": code, "error_message": message, "node_id": -1, "host": "", "port": -1}
