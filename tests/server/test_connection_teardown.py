"""A connection whose client is gone is closed even when its writer's cancellation is lost.

When the client goes away, the connection cancels its writer, which cancels the request it is
waiting on. If that cancellation is lost (here: a handler catches it and returns, as a shielded
wait or Python 3.11's ``asyncio.wait_for`` race can), the writer used to go back to waiting for
a next response that never came, and the connection stayed open for good. The reliability
suite's connection cuts (tests/reliability/test_connection_cuts.py) found a connection left in
exactly that state (its writer "cancelling", waiting on the response queue) about one run in
three; this reproduces the state deterministically.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from shoal.broker.broker import Broker, HandlerResult
from shoal.broker.context import RequestContext
from shoal.embedded import EmbeddedBroker
from shoal.protocol import Request
from shoal.protocol.versions import ApiKey
from tests.server.test_resources import LINGER_RST, connection_count
from tests.server.wire import IO_TIMEOUT_S, host_port, request_frame, wait_until

pytestmark = pytest.mark.integration


def test_a_handler_that_swallows_cancellation_does_not_keep_a_dead_connection(
    shoal_broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = Broker.handle
    started = 0

    async def swallowing(self: Broker, context: RequestContext, request: Request) -> HandlerResult:
        nonlocal started
        if request.header.api_key != ApiKey.METADATA:
            return await handle(self, context, request)
        started += 1
        try:
            await asyncio.Event().wait()  # never answers by itself
        except asyncio.CancelledError:
            return None  # the cancellation is swallowed: nothing to answer
        return None

    monkeypatch.setattr(Broker, "handle", swallowing)
    sock = socket.create_connection(host_port(shoal_broker.bootstrap_servers), IO_TIMEOUT_S)
    sock.sendall(request_frame(3, 12, {"topics": [{"name": "gone"}]}, correlation_id=1))
    assert wait_until(lambda: started, lambda n: n == 1) == 1
    assert connection_count(shoal_broker) == 1
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    sock.close()
    assert wait_until(lambda: connection_count(shoal_broker), lambda n: n == 0) == 0
