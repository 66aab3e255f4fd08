"""What every SASL mechanism shares: the error it raises and the shape of its state machine.

A mechanism is sans-IO: the server hands it each token the client sent (the auth bytes of a
SaslAuthenticate request) and sends back the bytes :meth:`SaslMechanism.step` returns. When
:attr:`SaslMechanism.complete` turns true the client is authenticated as
:attr:`SaslMechanism.principal`; any failure raises :class:`AuthenticationError`, after which
the mechanism accepts no more tokens.
"""

from __future__ import annotations

from typing import Final, Protocol

PLAIN: Final = "PLAIN"
SCRAM_SHA_256: Final = "SCRAM-SHA-256"
SCRAM_SHA_512: Final = "SCRAM-SHA-512"
OAUTHBEARER: Final = "OAUTHBEARER"
MECHANISMS: Final = (PLAIN, SCRAM_SHA_256, SCRAM_SHA_512, OAUTHBEARER)
"""Every mechanism shoal implements, as Kafka names them in ``sasl.enabled.mechanisms``."""


class AuthenticationError(Exception):
    """The client did not authenticate. The message goes to the client as it is (Kafka's
    SaslAuthenticate error message), so it never holds a password, a key or a token."""


class InvalidCredentials(AuthenticationError):
    """A failure Kafka reports only as "invalid credentials" (a SaslException in Kafka's
    servers): the client is told the mechanism, not what was wrong, so that a stranger learns
    nothing about which users exist. The message here is for the broker's debug log."""


class SaslMechanism(Protocol):
    """One authentication exchange on one connection (a new object per exchange)."""

    @property
    def name(self) -> str: ...

    def step(self, token: bytes) -> bytes:
        """The server's answer to the client's next ``token``; raises AuthenticationError."""
        ...

    @property
    def complete(self) -> bool:
        """True once the client is authenticated (the last answer is still to be sent)."""
        ...

    @property
    def principal(self) -> str:
        """The authenticated user name (Kafka principal ``User:<name>``); only once complete."""
        ...

    @property
    def credential_expiry_ms(self) -> int | None:
        """When the credential stops being valid (ms since the epoch: an OAuth token's exp),
        or None when it does not expire; KIP-368 ends the session there at the latest."""
        ...
