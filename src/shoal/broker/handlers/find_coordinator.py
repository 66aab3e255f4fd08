"""FindCoordinator (10): this broker coordinates every consumer group.

Key type 0 (group): the answer is this broker, for any key (batched in v4+). Key type 1
(transaction): transactions are not served yet, so COORDINATOR_NOT_AVAILABLE, which clients
treat as retriable. Other key types (e.g. share groups) get INVALID_REQUEST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from shoal.broker.handlers.registry import handles
from shoal.protocol import ApiKey, ErrorCode, Request
from shoal.protocol.build import response_for

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

KEY_TYPE_GROUP: Final = 0
KEY_TYPE_TRANSACTION: Final = 1
_NO_TRANSACTIONS = "transaction coordination is not available in this shoal version yet"


@handles(ApiKey.FIND_COORDINATOR)
async def handle_find_coordinator(broker: Broker, ctx: RequestContext, request: Request) -> Any:
    # Version-agnostic: every version of the message has the fields read here.
    header, body = request.header, cast(Any, request.body)
    key_type = int(getattr(body, "key_type", KEY_TYPE_GROUP))
    keys = list(getattr(body, "coordinator_keys", ()) or ())
    if not keys and getattr(body, "key", None) is not None:
        keys = [body.key]
    answer = _answer(broker, key_type)
    values: dict[str, Any] = {"throttle_time": 0, **answer}
    values["coordinators"] = [{"key": k, **answer} for k in keys]
    return response_for(header.api_key, header.api_version, values)


def _answer(broker: Broker, key_type: int) -> dict[str, Any]:
    if key_type == KEY_TYPE_GROUP:
        return {
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "node_id": broker.config.node_id,
            "host": broker.config.advertised_host,
            "port": broker.config.advertised_port,
        }
    if key_type == KEY_TYPE_TRANSACTION:
        code, message = ErrorCode.COORDINATOR_NOT_AVAILABLE, _NO_TRANSACTIONS
    else:
        code, message = ErrorCode.INVALID_REQUEST, f"unknown coordinator key type {key_type}"
    return {"error_code": code, "error_message": message, "node_id": -1, "host": "", "port": -1}
