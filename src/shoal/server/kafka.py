"""The Kafka listener: one asyncio task pair per connection, and one task per request.

The rule every connection keeps, as Kafka does: **a request sees the effects of every earlier
request on its connection.** Kafka gets that by handling one request per connection at a time;
shoal decodes requests as they arrive but starts a request's handler only once the previous
request's effects are applied (:meth:`RequestContext.effects_applied`). Only waits overlap: an
acks=all Produce appends, then lets the next request start while it waits for its fsync (so
pipelined Produce requests still share one group commit); a Fetch reads, then lets the next
request start while it long-polls; a JoinGroup joins, then waits for the rest of the group.
Connections are independent: a Fetch parked on one never holds up a Produce on another.
Responses leave strictly in request order.

Memory is bounded both ways. Requests: at most ``max_in_flight`` requests and
``max_in_flight_bytes`` of request bytes per connection are held; past that the reader stops
reading and TCP pushes back on the client. Responses: a request does not start while its
connection has ``max_unsent_response_bytes`` of responses the client has not read yet, or while
all connections together have ``max_unsent_response_bytes_total`` and this one has any. A
client that pipelines large Fetch requests and never reads therefore stalls only itself, as
Kafka mutes such a channel; a client that reads its responses always gets one more request
served.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from shoal.broker.broker import Broker, HandlerResult
from shoal.broker.context import RequestContext
from shoal.buffers import Buffer
from shoal.invariant import InvariantError
from shoal.protocol import (
    ApiKey,
    ErrorCode,
    FrameDecoder,
    FrameError,
    ProtocolError,
    Request,
    UnsupportedVersionError,
    decode_request,
    encode_api_versions_fallback,
    encode_frame_bytes,
    encode_response_frame,
)
from shoal.protocol.build import refusal_response
from shoal.security.sasl_session import Route
from shoal.security.scram_store import INTERNAL_PRINCIPAL
from shoal.server.authentication import SaslGate, SaslServerConfig
from shoal.server.buffered_stream import buffered_stream_factory
from shoal.server.gather_write import GatherWriter
from shoal.server.quota_enforcement import (
    AcceptThrottle,
    ConnectionMute,
    apply_quotas,
    fetch_room,
    quota_applies,
)
from shoal.server.request_metrics import ListenerStats, RequestMetrics
from shoal.server.response_budget import ConnectionBudget, ResponseBudget, ResponseLimits

log = logging.getLogger(__name__)

READ_CHUNK_BYTES: Final = 256 * 1024

_connection_numbers = itertools.count()
"""Makes each connection's id unique while the process runs (issue 16, slice Q)."""

Frame: TypeAlias = list[Buffer]
"""A response frame as the buffers to write in order (see :func:`encode_response_frame`)."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_frame_bytes: int = 100 * 1024 * 1024
    """socket.request.max.bytes: a larger frame is refused before it is read into memory."""
    max_in_flight: int = 128
    """Requests per connection being handled or awaiting their turn to be written."""
    max_in_flight_bytes: int = 64 * 1024 * 1024
    """Request bytes per connection held in memory at once; one larger frame may still pass
    alone (it was bounded by ``max_frame_bytes``), but never beside others."""
    idle_timeout_s: float = 600.0
    """connections.max.idle.ms: a connection silent this long is closed."""
    max_unsent_response_bytes: int = 64 * 1024 * 1024
    """Responses built but not yet read by the client, per connection, before its next request
    waits: room for one Fetch of fetch.max.bytes (55 MiB), the most a consumer asks for."""
    max_unsent_response_bytes_total: int = 128 * 1024 * 1024
    """The same across all connections: past it, only a connection holding nothing proceeds,
    and a Fetch then returns one batch (Fetch sizes its response to the room left)."""
    write_chunk_bytes: int = 1024 * 1024
    """A response is handed to the socket this much at a time, so the transport never copies
    a large response whole into its buffer when the client reads slowly."""


class KafkaServer:
    """Bound first (:meth:`bind`, which tells the real port), then serving a broker (:meth:`start`):
    the broker is built between the two, knowing the address clients are told to use."""

    def __init__(
        self,
        host: str,
        port: int,
        limits: ConnectionLimits | None = None,
        *,
        listener_name: str = "PLAINTEXT",
        security_protocol: str = "PLAINTEXT",
        ssl_context: ssl.SSLContext | None = None,
        ssl_handshake_timeout_s: float = 10.0,
        tls_principal: Callable[[asyncio.StreamWriter], str] | None = None,
        sasl: SaslServerConfig | None = None,
        request_metrics: RequestMetrics | None = None,
    ) -> None:
        """``ssl_context``: TLS on this listener (SSL, SASL_SSL), the handshake done by the
        event loop before a connection is accepted, and dropped when it has not finished
        within ``ssl_handshake_timeout_s``. ``tls_principal``: the principal of an accepted
        connection from its client certificate (SSL listeners); it raises to refuse one.
        ``sasl``: SASL on this listener (SASL_PLAINTEXT, SASL_SSL). ``request_metrics``: where
        requests are counted (one for all of a broker's listeners)."""
        self._broker: Broker | None = None
        self.listener_name = listener_name
        self.security_protocol = security_protocol
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout_s = ssl_handshake_timeout_s
        self._tls_principal = tls_principal
        self._sasl = sasl
        """Set on a SASL listener: connections authenticate before anything else (on
        SASL_SSL the principal is SASL's, not the certificate's, as in Kafka)."""
        self._host = host
        self._port = port
        self._limits = limits or ConnectionLimits()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._accept_throttle: AcceptThrottle | None = None
        # Metrics (issue 17).
        self.stats = ListenerStats()
        self.request_metrics = request_metrics if request_metrics is not None else RequestMetrics()
        self._responses = ResponseBudget(
            ResponseLimits(
                self._limits.max_unsent_response_bytes,
                self._limits.max_unsent_response_bytes_total,
            )
        )

    @property
    def port(self) -> int:
        """The bound port (differs from the one asked for when that was 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def requests_in_flight(self) -> int:
        """Requests read and not yet answered, over this listener's connections."""
        return sum(connection.in_flight for connection in self._connections)

    @property
    def unsent_response_bytes(self) -> int:
        """Response bytes built for clients and not yet taken by their sockets."""
        return self._responses.unsent_bytes

    async def bind(self) -> None:
        """Bind the listening socket, accepting no connection yet (a client is refused until
        :meth:`start`); :attr:`port` is then the bound port, also when the one asked for was 0."""
        self._server = await asyncio.get_running_loop().create_server(
            buffered_stream_factory(self._accept, limit=READ_CHUNK_BYTES),
            self._host,
            self._port,
            backlog=1024,
            start_serving=False,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._ssl_handshake_timeout_s if self._ssl_context else None,
        )

    async def start(self, broker: Broker) -> None:
        """Listen on the socket :meth:`bind` bound, each request answered by ``broker``."""
        if self._server is None:
            raise RuntimeError("KafkaServer.start: bind() first")
        self._broker = broker
        self._accept_throttle = AcceptThrottle(broker.quotas, broker.clock)
        await self._server.start_serving()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``grace_s``), close the rest."""
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        for connection in connections:
            connection.stop_reading()
        if connections:
            await asyncio.wait(
                [asyncio.ensure_future(c.drained()) for c in connections], timeout=grace_s
            )
        for connection in connections:
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        broker = self._broker
        if broker is None:  # cannot happen: bind() accepts nobody, start() sets the broker first
            raise InvariantError("a connection was accepted before start() gave the broker")
        # Client quotas: connection creation rates (see shoal.server.quota_enforcement).
        if self._accept_throttle is not None:
            peer = writer.get_extra_info("peername") or ("?", 0)
            if not await self._accept_throttle.admit(str(peer[0])):
                writer.close()
                return
        principal = None
        if self._tls_principal is not None:
            try:
                principal = self._tls_principal(writer)
            except LookupError as exc:  # no ssl.principal.mapping.rules rule: Kafka refuses
                self.stats.authentication_failures += 1
                log.info("refusing TLS client %s:%d: %s", *peer_of(writer), exc)
                writer.close()
                return
            if principal == INTERNAL_PRINCIPAL:
                # Only shoal's own SASL login may be this super user, never a certificate.
                self.stats.authentication_failures += 1
                log.warning(
                    "refusing TLS client %s:%d: its certificate maps to %s",
                    *peer_of(writer),
                    principal,
                )
                writer.close()
                return
            # Debug: one line per connection would drown a busy broker's log.
            log.debug(
                "TLS client %s:%d on listener %s is %s",
                *peer_of(writer),
                self.listener_name,
                principal,
            )
        self.stats.connections_accepted += 1
        connection = _Connection(
            broker,
            reader,
            writer,
            self._limits,
            self._responses.connection(),
            listener_name=self.listener_name,
            sasl=self._sasl,
            listener_stats=self.stats,
            request_metrics=self.request_metrics,
        )
        if principal is not None:
            connection.principal = principal
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)


class _Connection:
    """One client connection: a reader task, a writer task, and one task per request."""

    def __init__(
        self,
        broker: Broker,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: ConnectionLimits,
        budget: ConnectionBudget,
        *,
        listener_name: str,
        sasl: SaslServerConfig | None = None,
        listener_stats: ListenerStats | None = None,
        request_metrics: RequestMetrics | None = None,
    ) -> None:
        self._broker = broker
        self._listener_stats = listener_stats or ListenerStats()
        self._request_metrics = request_metrics or RequestMetrics()
        self.in_flight = 0
        """Requests read and not yet answered (metrics)."""
        self._listener_name = listener_name
        self.principal = "User:ANONYMOUS"
        """Who the client is: set by authentication (TLS client certificate, SASL)."""
        self._gate: SaslGate | None = None
        if sasl is not None:
            self._gate = SaslGate(sasl, broker.scram_credentials)
            self._gate.start_timer(self.stop_reading)
        self._reader = reader
        self._writer = writer
        self._gather = GatherWriter(writer)
        self._limits = limits
        peer = writer.get_extra_info("peername") or ("?", 0)
        self._host, self._port = str(peer[0]), int(peer[1])
        local = writer.get_extra_info("sockname") or ("?", 0)
        self.connection_id = (
            f"{local[0]}:{local[1]}-{self._host}:{self._port}-{next(_connection_numbers)}"
        )
        """Kafka's connection id: the broker hears of the connection's end by it."""
        # Each entry: the response frame being produced (as buffers to write in order), and
        # the request's size (released once sent).
        self._responses: asyncio.Queue[tuple[asyncio.Future[Frame | None], int] | None] = (
            asyncio.Queue()
        )
        self._budget = budget
        # Resolved when the latest dispatched request's effects are applied: the next request
        # starts after it (see the module docstring).
        self._previous_applied: asyncio.Future[None] | None = None
        self._slots = asyncio.Semaphore(limits.max_in_flight)
        self._bytes_in_flight = 0
        self._bytes_freed = asyncio.Event()
        self._reading = True
        self._peer_gone = False
        """The client went away: nothing more is written to it."""
        self._read_task: asyncio.Task[bool] | None = None
        self._write_task: asyncio.Task[None] | None = None
        self.mute = ConnectionMute()
        """Set by a throttled response: no request of this connection is read until it ends."""
        self._last_request: asyncio.Future[Frame | None] | None = None
        """The latest dispatched request's task: under a quota, the next one waits for it."""

    async def run(self) -> None:
        self._write_task = asyncio.ensure_future(self._write_loop())
        self._read_task = asyncio.ensure_future(self._read_loop())
        peer_gone = False
        try:
            peer_gone = await self._read_task
        except asyncio.CancelledError:
            pass  # stop_reading(): finish what is in flight, then close
        except Exception:
            log.exception("connection from %s:%d failed; closing", self._host, self._port)
        finally:
            try:
                await self._finish(peer_gone)
            finally:
                # Its requests ended (or were cancelled): what was tied to the connection
                # goes, such as the share session it opened (records released at once).
                self._broker.connection_closed(self.connection_id)

    async def _finish(self, peer_gone: bool) -> None:
        """Write the queued responses (unless nobody is left to read them), then close.

        When the client has gone, its pending requests are cancelled rather than completed:
        Kafka drops their responses too, and a Fetch parked for max_wait would otherwise keep
        its task, and the connection's, alive long after the socket is gone.
        """
        write_task = self._write_task
        if write_task is not None:
            if peer_gone:
                self._peer_gone = True
                write_task.cancel()
            # The writer finishes what is queued and stops here. Also after the cancel above:
            # if that cancellation is lost (a handler that swallows it hands the writer a
            # normal result, as a shielded wait or Python 3.11's asyncio.wait_for race can),
            # the writer would otherwise wait on the queue for good.
            self._responses.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await write_task
        # Whatever the writer did not take (it stopped on an error, or was cancelled) is
        # cancelled here, so no handler outlives its connection.
        while not self._responses.empty():
            entry = self._responses.get_nowait()
            if entry is not None:
                entry[0].cancel()
        self.abort()

    def stop_reading(self) -> None:
        self._reading = False
        if self._read_task is not None:
            self._read_task.cancel()

    async def drained(self) -> None:
        if self._write_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._write_task

    def abort(self) -> None:
        if self._gate is not None:
            self._gate.close()
        self._budget.close()
        if not self._writer.is_closing():
            self._writer.close()
        if self._write_task is not None and not self._write_task.done():
            self._write_task.cancel()

    async def _read_loop(self) -> bool:
        """Read and dispatch requests; True when the client went away, False when we close."""
        decoder = FrameDecoder(self._limits.max_frame_bytes)
        while self._reading:
            try:
                # asyncio.timeout, not wait_for: wait_for wraps every read in a task of its own.
                async with asyncio.timeout(self._limits.idle_timeout_s):
                    data = await self._reader.read(READ_CHUNK_BYTES)
            except TimeoutError:
                log.info("closing idle connection from %s:%d", self._host, self._port)
                return True
            except ConnectionError:
                return True
            if not data:
                return True
            if self._gate is not None:
                # Before authentication, Kafka's sasl.server.max.receive.size bounds a frame.
                decoder.max_frame_bytes = self._gate.frame_limit(self._limits.max_frame_bytes)
            try:
                # A bad size prefix fails feed() at once, before its body is waited for; the
                # whole frames that came before it are still dispatched (next_frame raises
                # when it reaches the bad prefix), as a Kafka broker reading frame by frame would.
                with contextlib.suppress(FrameError):
                    decoder.feed(data)
                for frame in decoder.frames():
                    await self.mute.wait()  # KIP-219: a throttled client is not read
                    await self._slots.acquire()
                    await self._reserve_bytes(len(frame))
                    if not self._dispatch(frame):
                        return False
                    if self._gate is not None and not self._gate.session.authenticated:
                        # Before authentication one request at a time, as Kafka reads them:
                        # an unauthenticated client holds at most one frame (512 KiB) and
                        # what is buffered, however much it pipelines.
                        await self._gate_turn()
            except ProtocolError as exc:
                log.info("closing connection from %s:%d: %s", self._host, self._port, exc)
                return False
        return False

    async def _gate_turn(self) -> None:
        applied = self._previous_applied
        if applied is not None and not applied.done():
            # Shielded: the read task may be cancelled (a failed authentication closes the
            # connection), which must not cancel the request's own future.
            await asyncio.shield(applied)

    async def _reserve_bytes(self, size: int) -> None:
        while (
            self._bytes_in_flight
            and self._bytes_in_flight + size > self._limits.max_in_flight_bytes
        ):
            self._bytes_freed.clear()
            await self._bytes_freed.wait()
        self._bytes_in_flight += size
        self.in_flight += 1

    def _release(self, size: int) -> None:
        self._slots.release()
        self.in_flight -= 1
        self._bytes_in_flight -= size
        self._bytes_freed.set()

    def _dispatch(self, frame: bytes) -> bool:
        """Start handling one frame; False when the connection must be closed."""
        if self._gate is not None and self._gate.expects_raw_token:
            self._dispatch_raw_token(frame)
            return True
        try:
            request = decode_request(frame, self._broker.apis)
        except UnsupportedVersionError as exc:
            if exc.api_key == ApiKey.API_VERSIONS and exc.correlation_id is not None:
                # KIP-511: answer in v0 with the versions we serve, so the client can retry.
                answer = encode_api_versions_fallback(exc.correlation_id, self._broker.apis)
                self._queue_ready(answer, len(frame))
                return True
            log.info("closing connection from %s:%d: %s", self._host, self._port, exc)
            self._release(len(frame))
            return False
        except ProtocolError as exc:
            log.info("closing connection from %s:%d: %s", self._host, self._port, exc)
            self._release(len(frame))
            return False
        gated = False
        if self._gate is not None:
            route = self._gate.route(request.header.api_key)
            if route is Route.CLOSE:
                log.info(
                    "closing connection from %s:%d: api key %d is not allowed while %s",
                    self._host,
                    self._port,
                    request.header.api_key,
                    self._gate.session.state.value,
                )
                self._release(len(frame))
                return False
            if route is Route.REFUSE:
                return self._refuse_in_sasl_state(request, len(frame))
            gated = route is Route.SASL
        previous = self._previous_applied
        applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._previous_applied = applied
        task = asyncio.ensure_future(
            self._handle(request, previous, applied, len(frame), self._last_request, gated=gated)
        )
        self._last_request = task
        # Dropped once done: a finished task holds its response, which may be a large Fetch.
        task.add_done_callback(self._forget_request)
        self._responses.put_nowait((task, len(frame)))
        return True

    def _refuse_in_sasl_state(self, request: Request, size: int) -> bool:
        """A request other than SaslAuthenticate after a SaslHandshake: answered with its error
        response (ILLEGAL_SASL_STATE), as Kafka answers, and the connection closed once that
        is written; closed without an answer where shoal cannot build one (see
        refusal_response). Always False (close)."""
        header = request.header
        message = f"Unexpected Kafka request of type {header.api_key} during SASL authentication."
        log.info("closing connection from %s:%d: %s", self._host, self._port, message)
        self._listener_stats.authentication_failures += 1
        response = refusal_response(
            header.api_key, header.api_version, request.body, ErrorCode.ILLEGAL_SASL_STATE, message
        )
        if response is None:
            self._release(size)
            return False
        frame = encode_response_frame(
            header.correlation_id, header.api_key, header.api_version, response
        )
        future: asyncio.Future[Frame | None] = asyncio.get_running_loop().create_future()
        future.set_result(frame)
        self._responses.put_nowait((future, size))
        return False

    def _dispatch_raw_token(self, frame: bytes) -> None:
        """A bare SASL token (after SaslHandshake v0), answered in turn by the gate."""
        previous = self._previous_applied
        applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._previous_applied = applied
        task = asyncio.ensure_future(self._answer_raw_token(frame, previous, applied))
        self._responses.put_nowait((task, len(frame)))

    async def _answer_raw_token(
        self, token: bytes, previous: asyncio.Future[None] | None, applied: asyncio.Future[None]
    ) -> Frame | None:
        gate = self._gate
        try:
            if previous is not None and not previous.done():
                await asyncio.shield(previous)
            answer = None if gate is None else await gate.answer_raw(token)
        finally:
            if not applied.done():
                applied.set_result(None)
        if gate is None or answer is None:
            self._listener_stats.authentication_failures += 1
            self.stop_reading()  # failed: closed with nothing sent, as Kafka does for v0
            return None
        if gate.principal is not None:
            self._authenticated(gate.principal)
        return [encode_frame_bytes(answer)]

    def _queue_ready(self, data: bytes, size: int) -> None:
        future: asyncio.Future[Frame | None] = asyncio.get_running_loop().create_future()
        future.set_result([data])
        self._responses.put_nowait((future, size))

    async def _handle(
        self,
        request: Request,
        previous: asyncio.Future[None] | None,
        applied: asyncio.Future[None],
        request_bytes: int,
        prior: asyncio.Future[Frame | None] | None,
        *,
        gated: bool = False,
    ) -> Frame | None:
        """Run one request once the one before it has applied its effects; ``gated``: a SASL
        request this connection's gate answers rather than the broker (no quota counts it)."""
        # The handler's time until its effects are applied (its waits are not work) is what
        # the request quota counts.
        started_ns = applied_ns = 0
        received_s = time.perf_counter()  # metrics: the request's whole time, waits included

        def mark_applied() -> None:
            nonlocal applied_ns
            if not applied.done():
                applied_ns = time.perf_counter_ns()
                applied.set_result(None)

        try:
            if previous is not None and not previous.done():
                # Shielded: cancelling this request must not resolve the previous one's future.
                await asyncio.shield(previous)
            await self._wait_out_throttle(request.header.client_id, prior)
            if not self._budget.has_room():
                await self._budget.wait_for_room()
            header = request.header
            context = RequestContext(
                header.client_id,
                self._host,
                self._port,
                principal=self.principal,
                listener_name=self._listener_name,
                on_effects_applied=mark_applied,
                response_room=self._response_room(header.api_key, header.client_id),
                connection_id=self.connection_id,
                close_connection=self._close_after_produce_error,
            )
            response: HandlerResult
            if gated and self._gate is not None:
                response, close = await self._gate.answer(request)
                if self._gate.principal is not None:
                    self._authenticated(self._gate.principal)
                if close:
                    self._listener_stats.authentication_failures += 1
                    self.stop_reading()  # this response is still written, then the socket closed
            else:
                started_ns = time.perf_counter_ns()
                response = await self._broker.handle(context, request)
        finally:
            # Also when the handler failed or was cancelled: the requests behind it proceed.
            mark_applied()
        if not gated:
            response = self._enforce_quotas(
                request, request_bytes, max(applied_ns - started_ns, 0), response
            )
        self._request_metrics.observe(
            header.api_key, header.api_version, time.perf_counter() - received_s, response
        )
        if response is None:
            return None
        frame = encode_response_frame(
            header.correlation_id, header.api_key, header.api_version, response
        )
        self._budget.produced(frame_size(frame))
        return frame

    def _close_after_produce_error(self) -> None:
        log.info(
            "closing connection from %s:%d: an acks=0 Produce failed (it has no response)",
            self._host,
            self._port,
        )
        self.stop_reading()

    def _authenticated(self, principal: str) -> None:
        if self.principal != principal:  # the first time, or a re-authentication as another
            self._listener_stats.authentication_successes += 1
        self.principal = principal

    # -- client quotas (see shoal.server.quota_enforcement) -------------------------------

    def _forget_request(self, task: asyncio.Future[Frame | None]) -> None:
        if self._last_request is task:
            self._last_request = None

    async def _wait_out_throttle(
        self, client_id: str | None, prior: asyncio.Future[Frame | None] | None
    ) -> None:
        """A client under a quota gets Kafka's one request at a time: a request read before
        the one ahead of it earned a throttle must still not start before the mute ends."""
        if not quota_applies(self._broker.quotas, self.principal, client_id):
            return
        if prior is not None and not prior.done():
            await asyncio.wait([prior])
        await self.mute.wait()

    def _response_room(self, api_key: int, client_id: str | None) -> Callable[[], int]:
        room = self._budget.room
        if api_key != ApiKey.FETCH:
            return room
        most = fetch_room(self._broker.quotas, self.principal, client_id)
        if most is None:
            return room
        return lambda: min(room(), most)

    def _enforce_quotas(
        self, request: Request, request_bytes: int, handler_ns: int, response: HandlerResult
    ) -> HandlerResult:
        throttled = apply_quotas(
            self._broker.quotas,
            self._broker.clock,
            principal=self.principal,
            client_id=request.header.client_id,
            request=request,
            request_bytes=request_bytes,
            handler_ns=handler_ns,
            response=response,
        )
        if throttled.throttle_ms > 0:
            self.mute.mute_for(throttled.throttle_ms)
            self._request_metrics.throttle(request.header.api_key, throttled.throttle_ms)
        return throttled.response

    async def _write_loop(self) -> None:
        while True:
            entry = await self._responses.get()
            if entry is None:
                return
            pending, size = entry
            try:
                frame = await pending
            except Exception:
                log.exception("request from %s:%d failed; closing", self._host, self._port)
                self.stop_reading()
                return
            finally:
                self._release(size)
            if self._peer_gone:
                return  # nobody is left to read it (the writer's cancellation was lost)
            if frame is not None:
                try:
                    await self._send(frame)
                except ConnectionError:
                    self.stop_reading()
                    return
                # The transport holds at most its high-water mark of it now.
                self._budget.sent(frame_size(frame))

    async def _send(self, frame: Frame) -> None:
        """Write the frame's buffers in order, at most a slice of ``write_chunk_bytes`` at a time.

        Each slice goes out in one ``writev`` when the socket takes it (no copy, one system
        call however many buffers); only what the socket refuses is copied into the
        transport's buffer, and draining after each slice (free while the transport is below
        its high-water mark) keeps that copy to one slice when the client reads slowly.
        """
        for piece in _slices(frame, self._limits.write_chunk_bytes):
            self._gather.write(piece)
            await self._writer.drain()


def _slices(frame: Frame, chunk: int) -> list[list[Buffer]]:
    """The frame's buffers regrouped into runs of about ``chunk`` bytes, large buffers cut."""
    if frame_size(frame) <= chunk:
        return [frame]  # nearly every response: one piece, nothing cut
    pieces: list[list[Buffer]] = []
    current: list[Buffer] = []
    size = 0
    for data in frame:
        view = memoryview(data)
        for start in range(0, max(len(view), 1), chunk):
            part = view[start : start + chunk]
            current.append(part)
            size += len(part)
            if size >= chunk:
                pieces.append(current)
                current, size = [], 0
    if current:
        pieces.append(current)
    return pieces


def peer_of(writer: asyncio.StreamWriter) -> tuple[str, int]:
    peer = writer.get_extra_info("peername") or ("?", 0)
    return str(peer[0]), int(peer[1])


def frame_size(frame: Frame) -> int:
    return sum(len(data) for data in frame)
