"""The SASL state of one connection on a SASL listener: which requests it may send, the
mechanism it chose, who it is, and when its session ends (KIP-368).

Sans-IO: the server decodes each request, asks :meth:`SaslSession.route` where it goes, and
feeds SaslHandshake / SaslAuthenticate contents to :meth:`SaslSession.handshake` and
:meth:`SaslSession.authenticate`. Kafka's rules, as its SaslServerAuthenticator keeps them:

* before authentication only ApiVersions, SaslHandshake and then SaslAuthenticate are
  accepted; anything else closes the connection;
* an authenticated session lasts ``connections.max.reauth.ms`` (or until the credential
  expires, for OAuth tokens) when either is set; the client re-authenticates on the same
  connection with SaslHandshake + SaslAuthenticate, with the same mechanism and principal;
  a request after the session ended closes the connection.

The transitions are the table :data:`TRANSITIONS`; a pair not in it is a protocol violation.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from shoal.security.sasl import AuthenticationError, InvalidCredentials, SaslMechanism

API_VERSIONS: Final = 18
SASL_HANDSHAKE: Final = 17
SASL_AUTHENTICATE: Final = 36


class State(enum.Enum):
    HANDSHAKE = "awaiting SaslHandshake"
    AUTHENTICATE = "authenticating"
    AUTHENTICATED = "authenticated"
    REAUTHENTICATE = "re-authenticating"
    FAILED = "failed"


class Event(enum.Enum):
    HANDSHAKE_ACCEPTED = "handshake accepted"
    HANDSHAKE_REFUSED = "handshake refused"
    # Enum values are descriptions, not secrets (ruff's S105 guesses from the names).
    TOKEN_CONTINUES = "token answered, exchange continues"  # noqa: S105
    TOKEN_COMPLETES = "token answered, exchange complete"  # noqa: S105
    TOKEN_FAILED = "token refused"  # noqa: S105


TRANSITIONS: Final[Mapping[tuple[State, Event], State]] = {
    (State.HANDSHAKE, Event.HANDSHAKE_ACCEPTED): State.AUTHENTICATE,
    (State.HANDSHAKE, Event.HANDSHAKE_REFUSED): State.FAILED,
    (State.AUTHENTICATE, Event.TOKEN_CONTINUES): State.AUTHENTICATE,
    (State.AUTHENTICATE, Event.TOKEN_COMPLETES): State.AUTHENTICATED,
    (State.AUTHENTICATE, Event.TOKEN_FAILED): State.FAILED,
    (State.AUTHENTICATED, Event.HANDSHAKE_ACCEPTED): State.REAUTHENTICATE,
    (State.AUTHENTICATED, Event.HANDSHAKE_REFUSED): State.FAILED,
    (State.REAUTHENTICATE, Event.TOKEN_CONTINUES): State.REAUTHENTICATE,
    (State.REAUTHENTICATE, Event.TOKEN_COMPLETES): State.AUTHENTICATED,
    (State.REAUTHENTICATE, Event.TOKEN_FAILED): State.FAILED,
}


class Route(enum.Enum):
    BROKER = "to the broker's handler"
    SASL = "to this session"
    CLOSE = "close the connection"
    REFUSE = "answer ILLEGAL_SASL_STATE, then close"
    """Kafka's SaslServerAuthenticator, expecting a SaslAuthenticate after a SaslHandshake v1,
    answers any other request with that request's error response, then closes."""


class IllegalSaslState(Exception):
    """A request the current state does not allow; the connection is closed."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    enabled_mechanisms: Sequence[str]
    max_reauth_ms: int = 0
    """connections.max.reauth.ms: 0 means sessions do not expire (unless the credential does)."""


@dataclass(frozen=True, slots=True)
class Answer:
    token: bytes
    session_lifetime_ms: int
    """0 until complete, and when the session does not expire."""


MechanismFactory = Callable[[str], SaslMechanism]
"""A new server-side exchange for an enabled mechanism name."""


class SaslSession:
    def __init__(self, config: SessionConfig, new_mechanism: MechanismFactory) -> None:
        self._config = config
        self._new_mechanism = new_mechanism
        self.state = State.HANDSHAKE
        self._mechanism: SaslMechanism | None = None
        self.mechanism_name: str | None = None
        self.principal: str | None = None
        """The authenticated user name; kept through a re-authentication."""
        self.session_expiry_ms: int | None = None
        self.client_reauthenticates = False
        """Whether the client sent SaslAuthenticate v1+ (it knows KIP-368)."""
        self.reauthentications = 0
        """Completed re-authentications on this connection."""
        self.raw_tokens = False
        """SaslHandshake v0: the tokens that follow are bare size-prefixed frames, not
        SaslAuthenticate requests (clients older than Kafka 1.0)."""

    @property
    def authenticated(self) -> bool:
        return self.principal is not None and self.state in (
            State.AUTHENTICATED,
            State.REAUTHENTICATE,
        )

    @property
    def reauthenticating(self) -> bool:
        return self.state is State.REAUTHENTICATE

    def _go(self, event: Event) -> None:
        state = self.state
        next_state = TRANSITIONS.get((state, event))
        if next_state is None:
            self.state = State.FAILED
            raise IllegalSaslState(f"{event.value} while {state.value}")
        self.state = next_state

    def expired(self, now_ms: int) -> bool:
        return self.session_expiry_ms is not None and now_ms >= self.session_expiry_ms

    def route(self, api_key: int, now_ms: int) -> Route:
        """Where a request with ``api_key`` goes in the current state."""
        state = self.state
        if state is State.HANDSHAKE:
            if api_key == API_VERSIONS:
                return Route.BROKER
            return Route.SASL if api_key == SASL_HANDSHAKE else Route.CLOSE
        if state is State.AUTHENTICATE:
            return Route.SASL if api_key == SASL_AUTHENTICATE else Route.REFUSE
        if state is State.AUTHENTICATED:
            if api_key == SASL_HANDSHAKE and self.session_expiry_ms is not None:
                return Route.SASL  # KIP-368 re-authentication
            # A request after the session ended: Kafka closes the connection.
            return Route.CLOSE if self.expired(now_ms) else Route.BROKER
        if state is State.REAUTHENTICATE:
            return Route.SASL if api_key == SASL_AUTHENTICATE else Route.BROKER
        return Route.CLOSE

    @property
    def expects_raw_token(self) -> bool:
        return self.raw_tokens and self.state is State.AUTHENTICATE

    def handshake(self, mechanism: str, *, version: int = 1) -> bool:
        """SaslHandshake: True when ``mechanism`` is enabled (and, on re-authentication, the
        one authenticated with); False when refused (the connection is then closed)."""
        if mechanism not in self._config.enabled_mechanisms or (
            self.state is State.AUTHENTICATED and mechanism != self.mechanism_name
        ):
            self._go(Event.HANDSHAKE_REFUSED)
            return False
        self._go(Event.HANDSHAKE_ACCEPTED)
        # v0 is answered the same, but the exchange then continues in bare frames; a
        # re-authentication (KIP-368) needs SaslAuthenticate, so v1 and up.
        self.raw_tokens = version == 0 and self.state is State.AUTHENTICATE
        self._mechanism = self._new_mechanism(mechanism)
        self.mechanism_name = mechanism
        return True

    def authenticate(self, token: bytes, now_ms: int, *, version: int) -> Answer:
        """SaslAuthenticate: the answer to ``token``; raises AuthenticationError (the
        connection is then answered SASL_AUTHENTICATION_FAILED and closed)."""
        mechanism = self._mechanism
        if mechanism is None or self.state not in (State.AUTHENTICATE, State.REAUTHENTICATE):
            raise IllegalSaslState(f"SaslAuthenticate while {self.state.value}")
        self.client_reauthenticates = self.client_reauthenticates or version > 0
        try:
            token_out = mechanism.step(token)
            if not mechanism.complete:
                self._go(Event.TOKEN_CONTINUES)
                return Answer(token_out, 0)
            principal = mechanism.principal
            if self.state is State.REAUTHENTICATE and principal != self.principal:
                raise AuthenticationError(
                    f"Cannot change principals during re-authentication from "
                    f"User.{self.principal}: User.{principal}"
                )
        except AuthenticationError as exc:
            during = "re-authentication" if self.state is State.REAUTHENTICATE else "authentication"
            self._go(Event.TOKEN_FAILED)
            if isinstance(exc, InvalidCredentials):
                # Kafka's words; the detail stays in the broker's debug log.
                raise InvalidCredentials(
                    f"Authentication failed during {during} due to invalid credentials with "
                    f"SASL mechanism {mechanism.name}"
                ) from exc
            raise
        if self.state is State.REAUTHENTICATE:
            self.reauthentications += 1
        self._go(Event.TOKEN_COMPLETES)
        self.principal = principal
        lifetime_ms = self._lifetime_ms(mechanism.credential_expiry_ms, now_ms)
        self.session_expiry_ms = now_ms + lifetime_ms if lifetime_ms else None
        self._mechanism = None
        return Answer(token_out, lifetime_ms)

    def _lifetime_ms(self, credential_expiry_ms: int | None, now_ms: int) -> int:
        """KIP-368: the shorter of connections.max.reauth.ms and the credential's remaining
        life (Kafka's ReauthInfo); 0 when neither applies."""
        max_reauth_ms = self._config.max_reauth_ms
        candidates = []
        if max_reauth_ms > 0:
            candidates.append(max_reauth_ms)
        if credential_expiry_ms is not None:
            candidates.append(max(credential_expiry_ms - now_ms, 0))
        if not candidates:
            return 0
        # At least 1 ms, so that an expired credential still yields a session that ends.
        return max(min(candidates), 1)
