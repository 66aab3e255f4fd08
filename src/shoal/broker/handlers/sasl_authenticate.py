"""SaslAuthenticate (36) reaching the broker: no SASL exchange is under way on the connection
(see :mod:`shoal.broker.handlers.sasl_handshake`); Kafka's KafkaApis answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


async def handle_sasl_authenticate(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header = request.header
    return response_for(
        header.api_key,
        header.api_version,
        {
            "error_code": ErrorCode.ILLEGAL_SASL_STATE,
            "error_message": "SaslAuthenticate request received after successful authentication",
            "auth_bytes": b"",
            "session_lifetime": 0,
        },
    )
