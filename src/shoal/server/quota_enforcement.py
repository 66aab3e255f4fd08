"""Client quotas at the connection: what each request costs, the throttle time it earned, the
response that says so, and the mute that enforces it (KIP-219).

After a request is handled the server records its cost against the client's quotas, as Kafka's
KafkaApis does: Produce counts the request's bytes (``producer_byte_rate``), Fetch the
response's size (``consumer_byte_rate``), and every request the time its handler ran
(``request_percentage``). The largest throttle time earned goes into the response's
``throttle_time_ms``; a throttled Fetch answers empty (its bytes are not counted, as Kafka
un-records them), so the consumer asks again for the same records later. The connection is
then muted for that long: the server reads none of its requests until the time has passed
(:class:`ConnectionMute`), so a client that ignores the throttle time gains nothing.

New connections are counted against ``max.connection.creation.rate`` (the acceptor waits) and
the per-IP ``connection_creation_rate`` (the connection is closed after the throttle time),
by :class:`AcceptThrottle`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from dataclasses import dataclass

from shoal.broker.broker import HandlerResult
from shoal.clock import Clock
from shoal.protocol import ApiKey, Request
from shoal.protocol.fetch_response import FIRST_FLEXIBLE as FETCH_FIRST_FLEXIBLE
from shoal.protocol.fetch_response import FetchResponse
from shoal.protocol.headers import encode_response_header
from shoal.protocol.produce_response import ProduceResponse
from shoal.security.quotas import NANOS_TO_PERCENT, ClientQuotas, quota_user

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Throttled:
    response: HandlerResult
    throttle_ms: int


def apply_quotas(
    quotas: ClientQuotas,
    clock: Clock,
    *,
    principal: str,
    client_id: str | None,
    request: Request,
    request_bytes: int,
    handler_ns: int,
    response: HandlerResult,
) -> Throttled:
    """Record the request's costs; the response with its throttle time, and that time (at
    least what the handler put there itself: a controller mutation quota's)."""
    if not quotas.any_client_quota:
        # The common case: no byte or request quota set, nothing to count.
        return Throttled(response, throttle_time_of(response))
    user = quota_user(principal)
    client = client_id or ""
    now_ms = int(clock.monotonic_ms())
    api_key = request.header.api_key
    request_ms = 0
    # Kafka does not count request time of acks=0 Produce requests: no response carries it.
    if not (api_key == ApiKey.PRODUCE and response is None):
        request_ms = quotas.request.record(user, client, handler_ns * NANOS_TO_PERCENT, now_ms)
    bandwidth_ms = 0
    if api_key == ApiKey.PRODUCE:
        bandwidth_ms = quotas.produce.record(user, client, request_bytes, now_ms)
    elif api_key == ApiKey.FETCH and isinstance(response, FetchResponse):
        size = fetch_response_size(response, request.header.api_version)
        bandwidth_ms = quotas.fetch.record(user, client, size, now_ms)
        if max(bandwidth_ms, request_ms) > 0:
            # The records are not sent, so they are not counted.
            quotas.fetch.unrecord(user, client, size, now_ms)
            response = dataclasses.replace(response, topics=())
    throttle_ms = max(bandwidth_ms, request_ms)
    if throttle_ms > 0:
        response = with_throttle_time(response, throttle_ms)
    return Throttled(response, max(throttle_ms, throttle_time_of(response)))


def fetch_response_size(response: FetchResponse, version: int) -> int:
    """The size Kafka counts against consumer_byte_rate: the response body plus 4
    (``FetchResponse.sizeOf``), i.e. the frame less its header. Framing copies no record, so
    measuring it costs little, and only clients under a fetch quota are measured."""
    header = len(encode_response_header(0, flexible=version >= FETCH_FIRST_FLEXIBLE))
    return sum(len(part) for part in response.encode_frame(0, version)) - header


def throttle_time_of(response: HandlerResult) -> int:
    """The throttle time ``response`` already carries, in ms (0 where it has none)."""
    if isinstance(response, (ProduceResponse, FetchResponse)):
        return response.throttle_time_ms
    value = getattr(response, "throttle_time", None)
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return 0


def with_throttle_time(response: HandlerResult, throttle_ms: int) -> HandlerResult:
    """``response`` saying the client is throttled for ``throttle_ms`` (or what it already
    says, if longer), where its schema has the field (every client response but a few old
    versions does)."""
    throttle_ms = max(throttle_ms, throttle_time_of(response))
    if isinstance(response, (ProduceResponse, FetchResponse)):
        return dataclasses.replace(response, throttle_time_ms=throttle_ms)
    if response is None or not dataclasses.is_dataclass(response):
        return response
    if "throttle_time" in {f.name for f in dataclasses.fields(response)}:
        return dataclasses.replace(
            response, throttle_time=datetime.timedelta(milliseconds=throttle_ms)
        )
    return response


def quota_applies(quotas: ClientQuotas, principal: str, client_id: str | None) -> bool:
    """Whether a byte-rate or request quota applies to this client (cheap when none is set)."""
    if not quotas.any_client_quota:
        return False
    user, client = quota_user(principal), client_id or ""
    return any(
        manager.quota(user, client) is not None
        for manager in (quotas.produce, quotas.fetch, quotas.request)
    )


def fetch_room(quotas: ClientQuotas, principal: str, client_id: str | None) -> int | None:
    """The most a Fetch of this client may return: Kafka caps fetch.max.bytes by what the
    client's consumer_byte_rate allows over the whole window, so that one response can never
    earn a throttle longer than the window; None when no quota applies."""
    most = quotas.fetch.max_value_in_window(quota_user(principal), client_id or "")
    return None if most is None else max(int(most), 1)


class ConnectionMute:
    """When a throttled connection may be read again (the event loop's clock, in seconds)."""

    def __init__(self) -> None:
        self.until: float = 0.0
        """The loop time at which the mute ends; 0 when the connection was never muted."""

    def mute_for(self, throttle_ms: int) -> None:
        loop = asyncio.get_running_loop()
        self.until = max(self.until, loop.time() + throttle_ms / 1000.0)

    @property
    def muted(self) -> bool:
        return asyncio.get_running_loop().time() < self.until

    async def wait(self) -> None:
        """Return once the mute has ended (at once when not muted)."""
        loop = asyncio.get_running_loop()
        # A deadline, not an event: a later throttle may push it further while this waits,
        # and nothing else ends a mute early.
        while (remaining := self.until - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(remaining)


class AcceptThrottle:
    """Kafka's acceptor throttling for new connections.

    Over the broker-wide rate, connections wait their turn one at a time (as Kafka's single
    acceptor thread blocks); over its IP's quota, a connection is held for the throttle time
    and then closed without being served.
    """

    def __init__(self, quotas: ClientQuotas, clock: Clock) -> None:
        self._quotas = quotas
        self._clock = clock
        self._acceptor = asyncio.Lock()
        self.held = 0
        """New connections being held back by a connection creation rate right now."""

    async def admit(self, ip: str) -> bool:
        """False when the connection must be closed (its IP is over its quota)."""
        connections = self._quotas.connections
        self.held += 1
        try:
            async with self._acceptor:
                delay_ms = connections.broker_throttle_ms(int(self._clock.monotonic_ms()))
                if delay_ms > 0:
                    await asyncio.sleep(delay_ms / 1000.0)
            ip_delay_ms = connections.ip_throttle_ms(ip, int(self._clock.monotonic_ms()))
            if ip_delay_ms > 0:
                log.info(
                    "connection from %s is over its connection_creation_rate; closing it in %d ms",
                    ip,
                    ip_delay_ms,
                )
                await asyncio.sleep(ip_delay_ms / 1000.0)
                return False
            return True
        finally:
            self.held -= 1
