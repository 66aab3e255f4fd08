"""The authentication gate of a connection on a SASL listener.

It sits in the connection's dispatch path (see :mod:`shoal.server.kafka`): each decoded request
is routed by the connection's :class:`~shoal.security.sasl_session.SaslSession` to the broker,
to this gate (SaslHandshake, SaslAuthenticate), or to closing the connection, as Kafka's
SaslServerAuthenticator does. The gate also bounds what an unauthenticated client can cost:
its frames (``sasl.server.max.receive.size``, 512 KiB) and the time it has to authenticate.
A failed authentication is answered SASL_AUTHENTICATION_FAILED, after
``connection.failed.authentication.delay.ms``, and the connection then closed.

Mechanism steps run on a worker thread: a PLAIN check is a PBKDF2 of up to 16,384 iterations,
which must not stall every other connection on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.oauthbearer import OAuthBearerServer, TokenValidator
from shoal.security.plain_users import PlainUsers
from shoal.security.sasl import OAUTHBEARER, PLAIN, AuthenticationError, SaslMechanism
from shoal.security.sasl_plain import PlainServer
from shoal.security.sasl_session import (
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    IllegalSaslState,
    Route,
    SaslSession,
    SessionConfig,
)
from shoal.security.scram import ALGORITHMS, ScramServer
from shoal.security.scram_store import ScramCredentialStore

log = logging.getLogger(__name__)

SASL_MAX_RECEIVE_BYTES: Final = 512 * 1024
"""Kafka's sasl.server.max.receive.size: the largest frame read before authentication, so an
unauthenticated client cannot make the broker allocate a 100 MiB request."""
AUTHENTICATION_TIMEOUT_S: Final = 30.0
"""How long a client has, from connecting, to complete its SASL exchange; a client that
stalls half-way (slowloris) is then closed. Real clients take milliseconds."""


class _HandshakeRequest(Protocol):
    mechanism: str


class _AuthenticateRequest(Protocol):
    auth_bytes: bytes


@dataclass(frozen=True, slots=True)
class SaslServerConfig:
    """What a SASL listener needs: Kafka's names, with dots as underscores in settings."""

    enabled_mechanisms: tuple[str, ...]
    connections_max_reauth_ms: int = 0
    connection_failed_authentication_delay_ms: int = 100
    max_receive_bytes: int = SASL_MAX_RECEIVE_BYTES
    authentication_timeout_s: float = AUTHENTICATION_TIMEOUT_S
    oauth_validator: TokenValidator | None = None
    plain_users: PlainUsers | None = None
    """PLAIN users from sasl_plain_users_file, checked after the SCRAM users."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SaslGate:
    """One connection's SASL state, and the answers to its SASL requests."""

    def __init__(
        self,
        config: SaslServerConfig,
        credentials: ScramCredentialStore,
        *,
        now_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self._config = config
        self._credentials = credentials
        self._now_ms = now_ms
        self.session = SaslSession(
            SessionConfig(config.enabled_mechanisms, config.connections_max_reauth_ms),
            self._new_mechanism,
        )
        self._timer: asyncio.TimerHandle | None = None

    def _new_mechanism(self, name: str) -> SaslMechanism:
        if name == PLAIN:
            return PlainServer(self._check_password)
        if name == OAUTHBEARER:
            validator = self._config.oauth_validator
            if validator is None:  # settings refuse OAUTHBEARER without a validator
                raise AuthenticationError("OAUTHBEARER is enabled without a token validator")
            return OAuthBearerServer(validator)
        return ScramServer(ALGORITHMS[name], self._credentials.get, self._credentials.decoy)

    def _check_password(self, user: str, password: str) -> bool:
        users = self._config.plain_users
        if users is not None and users.knows(user):
            return users.check(user, password)
        return self._credentials.check_password(user, password)

    # -- what the connection asks -------------------------------------------------------

    def start_timer(self, on_timeout: Callable[[], None]) -> None:
        """Call ``on_timeout`` unless the client authenticates in time."""

        def expire() -> None:
            if not self.session.authenticated:
                log.info("closing a connection that did not authenticate in time")
                on_timeout()

        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._config.authentication_timeout_s, expire)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def principal(self) -> str | None:
        """``User:<name>`` once authenticated."""
        name = self.session.principal
        return None if name is None else f"User:{name}"

    def frame_limit(self, authenticated_limit: int) -> int:
        """The largest frame to accept next."""
        return authenticated_limit if self.session.authenticated else self._config.max_receive_bytes

    def route(self, api_key: int) -> Route:
        return self.session.route(api_key, self._now_ms())

    async def answer(self, request: Request) -> tuple[ResponseBody, bool]:
        """The response to a SaslHandshake or SaslAuthenticate routed here, and whether the
        connection closes after sending it."""
        header = request.header
        if header.api_key == SASL_HANDSHAKE:
            response, refused = self._handshake(request)
            if refused:
                await self._failure_delay()
            return response, refused
        if header.api_key != SASL_AUTHENTICATE:  # route() sends nothing else here
            raise IllegalSaslState(f"api key {header.api_key} routed to the SASL gate")
        # A Protocol as the shape, as the handlers pass one (mypy's type-abstract is off there).
        body = request_body(request.body, _AuthenticateRequest)  # type: ignore[type-abstract]
        token = bytes(body.auth_bytes)
        now_ms = self._now_ms()
        try:
            answer = await asyncio.to_thread(
                self.session.authenticate, token, now_ms, version=header.api_version
            )
        except (AuthenticationError, IllegalSaslState) as exc:
            log.info("SASL authentication failed: %s (%s)", exc, exc.__cause__ or "")
            await self._failure_delay()
            message = str(exc)
            if isinstance(exc, IllegalSaslState):
                message = f"Unexpected SASL request: {exc}"
            return self._authenticate_response(
                request, ErrorCode.SASL_AUTHENTICATION_FAILED, message, b"", 0
            ), True
        if self.session.authenticated:
            self.close()  # the authentication deadline is met
        return self._authenticate_response(
            request, ErrorCode.NONE, None, answer.token, answer.session_lifetime_ms
        ), False

    @property
    def expects_raw_token(self) -> bool:
        """After SaslHandshake v0 the next frame is a bare SASL token, not a Kafka request."""
        return self.session.expects_raw_token

    async def answer_raw(self, token: bytes) -> bytes | None:
        """The answer to a bare token (SaslHandshake v0 clients), to send as a bare frame;
        None when authentication failed (v0 has no way to say why: the connection is
        closed after the failure delay, as Kafka closes it)."""
        try:
            answer = await asyncio.to_thread(
                self.session.authenticate, token, self._now_ms(), version=0
            )
        except (AuthenticationError, IllegalSaslState) as exc:
            log.info("SASL authentication failed: %s (%s)", exc, exc.__cause__ or "")
            await self._failure_delay()
            return None
        if self.session.authenticated:
            self.close()
        return answer.token

    async def _failure_delay(self) -> None:
        """Kafka's connection.failed.authentication.delay.ms: a client guessing passwords
        gets one guess per connection, and each costs it this long."""
        await asyncio.sleep(self._config.connection_failed_authentication_delay_ms / 1000)

    def _handshake(self, request: Request) -> tuple[ResponseBody, bool]:
        header = request.header
        body = request_body(request.body, _HandshakeRequest)  # type: ignore[type-abstract]
        mechanism = body.mechanism
        accepted = self.session.handshake(mechanism, version=header.api_version)
        response = response_for(
            header.api_key,
            header.api_version,
            {
                "error_code": ErrorCode.NONE if accepted else ErrorCode.UNSUPPORTED_SASL_MECHANISM,
                "mechanisms": list(self._config.enabled_mechanisms),
            },
        )
        if not accepted:
            log.info("SASL handshake refused: mechanism %r is not enabled", mechanism[:64])
        return response, not accepted

    @staticmethod
    def _authenticate_response(
        request: Request,
        error: ErrorCode,
        message: str | None,
        token: bytes,
        session_lifetime_ms: int,
    ) -> ResponseBody:
        header = request.header
        return response_for(
            header.api_key,
            header.api_version,
            {
                "error_code": error,
                "error_message": message,
                "auth_bytes": token,
                "session_lifetime": session_lifetime_ms,
            },
        )
