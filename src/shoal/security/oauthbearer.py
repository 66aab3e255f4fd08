"""SASL OAUTHBEARER (RFC 7628) on the server side, as Kafka runs it.

The client's one message::

    n,[a=<authzid>],\\x01auth=Bearer <token>\\x01[<key>=<value>\\x01]*\\x01

The token is checked by a :class:`TokenValidator` (a JWT against configured keys, see
:mod:`shoal.security.oauth_jwt`). When it is refused, RFC 7628 has the server answer with a
JSON error (``{"status":"invalid_token"}``) as a challenge; the client acknowledges with a
single ``\\x01`` and the exchange then fails with that JSON as Kafka's error message.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Final, Protocol

from shoal.security.sasl import OAUTHBEARER, AuthenticationError, InvalidCredentials
from shoal.security.scram import unescape_username

_SEPARATOR: Final = "\x01"
_KEY: Final = re.compile(r"[A-Za-z]+")
_VALUE: Final = re.compile(r"[\x21-\x7e \t\r\n]+")
_AUTH: Final = re.compile(r"([A-Za-z]+) +([-_~+/.a-zA-Z0-9]+=*)")
"""RFC 6750's b64token after the scheme."""


class TokenError(Exception):
    """The token is not valid; ``status`` and ``scope`` go in the RFC 7628 JSON error, the
    message only in the broker's log (it may say which claim was wrong, never the token)."""

    def __init__(self, message: str, *, status: str = "invalid_token", scope: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.scope = scope


@dataclass(frozen=True, slots=True)
class ValidToken:
    principal: str
    expiry_ms: int
    """The token's exp, in ms since the epoch."""


class TokenValidator(Protocol):
    def validate(self, token: str) -> ValidToken:
        """The token's principal and expiry; raises :class:`TokenError`."""
        ...


class _State(enum.Enum):
    INITIAL = "expecting the client's initial response"
    ERROR_SENT = "error sent, expecting the client's acknowledgement"
    COMPLETE = "complete"
    FAILED = "failed"


class OAuthBearerServer:
    def __init__(self, validator: TokenValidator) -> None:
        self._validator = validator
        self._state = _State.INITIAL
        self._token: ValidToken | None = None
        self._error = ""

    @property
    def name(self) -> str:
        return OAUTHBEARER

    @property
    def complete(self) -> bool:
        return self._state is _State.COMPLETE

    @property
    def principal(self) -> str:
        if self._token is None or self._state is not _State.COMPLETE:
            raise AuthenticationError("the OAUTHBEARER exchange has not completed")
        return self._token.principal

    @property
    def credential_expiry_ms(self) -> int | None:
        return None if self._token is None else self._token.expiry_ms

    def step(self, token: bytes) -> bytes:
        state = self._state
        self._state = _State.FAILED
        if state is _State.ERROR_SENT:
            # The client's acknowledgement (a lone 0x01) or anything else: the exchange fails
            # with the error it was sent, as Kafka's OAuthBearerSaslServer does.
            raise AuthenticationError(self._error)
        if state is not _State.INITIAL:
            raise AuthenticationError(f"OAUTHBEARER exchange already {state.value}")
        authzid, bearer = parse_initial_response(token)
        try:
            valid = self._validator.validate(bearer)
        except TokenError as exc:
            error: dict[str, str] = {"status": exc.status}
            if exc.scope:
                error["scope"] = exc.scope
            self._error = json.dumps(error, separators=(",", ":"))
            self._state = _State.ERROR_SENT
            return self._error.encode()
        if authzid and authzid != valid.principal:
            raise AuthenticationError(
                f"Authentication failed: Client requested an authorization id ({authzid}) "
                f"that is different from the token's principal name ({valid.principal})"
            )
        self._token = valid
        self._state = _State.COMPLETE
        return b""


def parse_initial_response(token: bytes) -> tuple[str, str]:
    """(authzid, bearer token) of the client's initial response; extensions are accepted
    and ignored (shoal defines none). Raises InvalidCredentials when malformed."""
    try:
        text = token.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidCredentials("OAUTHBEARER message is not ASCII") from None
    gs2, sep, rest = text.partition(_SEPARATOR)
    if not sep or not gs2.startswith("n,") or not gs2.endswith(","):
        raise InvalidCredentials("OAUTHBEARER message has no gs2 header 'n,[a=...],'")
    authzid_part = gs2[2:-1]
    authzid = ""
    if authzid_part:
        if not authzid_part.startswith("a=") or "," in authzid_part:
            raise InvalidCredentials("malformed authzid")
        authzid = unescape_username(authzid_part[2:])
    if not rest.endswith(_SEPARATOR + _SEPARATOR) and rest != _SEPARATOR:
        raise InvalidCredentials("OAUTHBEARER message does not end with two 0x01")
    pairs = rest[:-2].split(_SEPARATOR) if rest != _SEPARATOR else []
    auth = None
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
            raise InvalidCredentials("malformed OAUTHBEARER key=value pair")
        if key == "auth":
            auth = value
    if auth is None:
        raise InvalidCredentials("OAUTHBEARER message has no auth=")
    match = _AUTH.fullmatch(auth)
    if match is None or match.group(1).lower() != "bearer":
        raise InvalidCredentials("OAUTHBEARER auth= is not 'Bearer <token>'")
    return authzid, match.group(2)
