"""The table from API key to handler, filled by the ``@handles`` decorator of each module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from shoal.protocol import Request

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

Handler = Callable[["Broker", "RequestContext", Request], Awaitable[Any]]
"""Returns the response message, or None when no response is sent (Produce with acks=0)."""

HANDLERS: dict[int, Handler] = {}


def handles(api_key: int) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[int(api_key)] = handler
        return handler

    return register
