"""FindCoordinator (10): consumer groups and transactions arrive in later work; until then the
answer is COORDINATOR_NOT_AVAILABLE, which clients treat as retriable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from shoal.broker.handlers.registry import handles
from shoal.protocol import ApiKey, ErrorCode, Request
from shoal.protocol.build import response_for

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

_MESSAGE = "group and transaction coordination is not available in this shoal version yet"


@handles(ApiKey.FIND_COORDINATOR)
async def handle_find_coordinator(broker: Broker, ctx: RequestContext, request: Request) -> Any:
    # Version-agnostic: every version of the message has the fields read here.
    header, body = request.header, cast(Any, request.body)
    error = {
        "error_code": ErrorCode.COORDINATOR_NOT_AVAILABLE,
        "error_message": _MESSAGE,
        "node_id": -1,
        "host": "",
        "port": -1,
    }
    keys = list(getattr(body, "coordinator_keys", ()) or ())
    if not keys and getattr(body, "key", None) is not None:
        keys = [body.key]
    values: dict[str, Any] = {"throttle_time": 0, **error}
    values["coordinators"] = [{"key": k, **error} for k in keys]
    return response_for(header.api_key, header.api_version, values)
