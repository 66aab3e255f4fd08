"""SASL PLAIN (RFC 4616) on the server side, with Kafka's rules and messages.

The one client token is ``authzid NUL authcid NUL password`` (UTF-8). As in Kafka, the authzid
must be empty or equal to the user name. The password is checked by a function the caller
gives (:class:`~shoal.security.scram_store.ScramCredentialStore.check_password`), which never
returns the stored secret.
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.security.sasl import PLAIN, AuthenticationError

PasswordCheck = Callable[[str, str], bool]
"""True when (user, password) is a valid login."""


class PlainServer:
    def __init__(self, check: PasswordCheck) -> None:
        self._check = check
        self._username: str | None = None
        self._done = False

    @property
    def name(self) -> str:
        return PLAIN

    @property
    def complete(self) -> bool:
        return self._username is not None

    @property
    def principal(self) -> str:
        if self._username is None:
            raise AuthenticationError("the PLAIN exchange has not completed")
        return self._username

    @property
    def credential_expiry_ms(self) -> int | None:
        return None

    def step(self, token: bytes) -> bytes:
        if self._done:
            raise AuthenticationError("PLAIN takes one token; the exchange is over")
        self._done = True
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationError("Invalid SASL/PLAIN response: not UTF-8") from None
        parts = text.split("\x00")
        if len(parts) != 3:
            # Kafka's own message, which counts the tokens.
            raise AuthenticationError(
                f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(parts)}"
            )
        authzid, username, password = parts
        if not username:
            raise AuthenticationError("Authentication failed: username not specified")
        if not password:
            raise AuthenticationError("Authentication failed: password not specified")
        if not self._check(username, password):
            raise AuthenticationError("Authentication failed: Invalid username or password")
        if authzid and authzid != username:
            raise AuthenticationError(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        self._username = username
        return b""
