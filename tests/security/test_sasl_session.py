"""The connection's SASL state machine: routing by state, KIP-368 sessions and
re-authentication, refusals."""

from __future__ import annotations

import pytest

from shoal.security.sasl import AuthenticationError, InvalidCredentials
from shoal.security.sasl_session import (
    TRANSITIONS,
    Event,
    IllegalSaslState,
    Route,
    SaslSession,
    SessionConfig,
    State,
)

METADATA, API_VERSIONS, HANDSHAKE, AUTHENTICATE = 3, 18, 17, 36


class OneStep:
    """A mechanism that logs in as whatever name the token carries; b"bad" fails."""

    def __init__(self, name: str, expiry_ms: int | None = None) -> None:
        self.name = name
        self._user: str | None = None
        self.credential_expiry_ms = expiry_ms

    def step(self, token: bytes) -> bytes:
        if token == b"bad":
            raise InvalidCredentials("bad token")
        self._user = token.decode()
        return b"ok"

    @property
    def complete(self) -> bool:
        return self._user is not None

    @property
    def principal(self) -> str:
        assert self._user is not None
        return self._user


def _session(max_reauth_ms: int = 0, expiry_ms: int | None = None) -> SaslSession:
    return SaslSession(
        SessionConfig(("PLAIN", "SCRAM-SHA-512"), max_reauth_ms),
        lambda name: OneStep(name, expiry_ms),
    )


def test_before_authentication_only_sasl_apis_pass() -> None:
    session = _session()
    assert session.route(API_VERSIONS, 0) is Route.BROKER
    assert session.route(METADATA, 0) is Route.CLOSE
    assert session.route(AUTHENTICATE, 0) is Route.CLOSE
    assert session.route(HANDSHAKE, 0) is Route.SASL
    assert session.handshake("PLAIN")
    # Kafka answers these with their error response (ILLEGAL_SASL_STATE), then closes.
    assert session.route(METADATA, 0) is Route.REFUSE
    assert session.route(HANDSHAKE, 0) is Route.REFUSE
    assert session.route(AUTHENTICATE, 0) is Route.SASL
    answer = session.authenticate(b"alice", 0, version=2)
    assert answer.token == b"ok" and answer.session_lifetime_ms == 0
    assert session.principal == "alice" and session.authenticated
    assert session.route(METADATA, 10**12) is Route.BROKER  # no session expiry
    assert session.route(HANDSHAKE, 0) is Route.BROKER  # no re-authentication: KafkaApis answers


def test_unknown_mechanism_fails_the_session() -> None:
    session = _session()
    assert not session.handshake("GSSAPI")
    assert session.state is State.FAILED
    assert session.route(API_VERSIONS, 0) is Route.CLOSE


def test_invalid_credentials_get_kafkas_message() -> None:
    session = _session()
    session.handshake("SCRAM-SHA-512")
    with pytest.raises(InvalidCredentials) as raised:
        session.authenticate(b"bad", 0, version=2)
    assert str(raised.value) == (
        "Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism SCRAM-SHA-512"
    )
    assert session.state is State.FAILED and not session.authenticated


def test_session_lifetime_and_expiry() -> None:
    session = _session(max_reauth_ms=1000)
    session.handshake("PLAIN")
    assert session.authenticate(b"alice", 5000, version=2).session_lifetime_ms == 1000
    assert session.route(METADATA, 5999) is Route.BROKER
    assert session.route(METADATA, 6000) is Route.CLOSE  # expired: closed at its next request
    assert session.route(HANDSHAKE, 6000) is Route.SASL  # ... unless it re-authenticates


def test_credential_expiry_shortens_the_session() -> None:
    session = _session(max_reauth_ms=60_000, expiry_ms=10_000)
    session.handshake("PLAIN")
    assert session.authenticate(b"alice", 4000, version=2).session_lifetime_ms == 6000


def test_reauthentication_with_the_same_principal_extends_the_session() -> None:
    session = _session(max_reauth_ms=1000)
    session.handshake("PLAIN")
    session.authenticate(b"alice", 0, version=2)
    assert session.handshake("PLAIN")
    assert session.state is State.REAUTHENTICATE
    assert session.route(METADATA, 500) is Route.BROKER  # still authenticated meanwhile
    assert session.authenticate(b"alice", 900, version=2).session_lifetime_ms == 1000
    assert session.session_expiry_ms == 1900 and session.reauthentications == 1
    assert session.route(METADATA, 1500) is Route.BROKER


def test_reauthentication_as_another_principal_is_refused() -> None:
    session = _session(max_reauth_ms=1000)
    session.handshake("PLAIN")
    session.authenticate(b"alice", 0, version=2)
    session.handshake("PLAIN")
    with pytest.raises(AuthenticationError, match="Cannot change principals"):
        session.authenticate(b"mallory", 10, version=2)
    assert session.state is State.FAILED and not session.authenticated


def test_reauthentication_with_another_mechanism_is_refused() -> None:
    session = _session(max_reauth_ms=1000)
    session.handshake("PLAIN")
    session.authenticate(b"alice", 0, version=2)
    assert not session.handshake("SCRAM-SHA-512")
    assert session.state is State.FAILED


def test_authenticate_outside_an_exchange_is_illegal() -> None:
    with pytest.raises(IllegalSaslState):
        _session().authenticate(b"alice", 0, version=2)


def test_every_state_but_failed_has_a_way_out() -> None:
    sources = {state for state, _ in TRANSITIONS}
    assert sources == set(State) - {State.FAILED}
    assert all(isinstance(event, Event) for _, event in TRANSITIONS)
