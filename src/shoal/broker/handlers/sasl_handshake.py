"""SaslHandshake (17) reaching the broker: the connection is not in a SASL exchange (a PLAINTEXT
listener, or an authenticated connection whose session does not re-authenticate). SASL
listeners answer the exchange itself in :mod:`shoal.server.authentication`; here, as Kafka's
KafkaApis does, the answer is ILLEGAL_SASL_STATE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


async def handle_sasl_handshake(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header = request.header
    return response_for(
        header.api_key,
        header.api_version,
        {"error_code": ErrorCode.ILLEGAL_SASL_STATE, "mechanisms": []},
    )
