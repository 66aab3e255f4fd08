"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) on the server side, as Kafka runs them.

The exchange, each line one SaslAuthenticate token::

    client-first   n,[a=<authzid>],n=<user>,r=<client nonce>
    server-first   r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>
    client-final   c=<base64 "n,[a=..],">,r=<both nonces>,p=<base64 proof>
    server-final   v=<base64 server signature>

Channel binding (gs2 flag ``p=``/``y``) and extensions such as Kafka's ``tokenauth``
(delegation tokens, which shoal does not issue) are refused. The server keeps only the stored
key and server key of each user (:class:`ScramCredential`), never the password. An unknown
user is given a salt like any other and fails at the proof, like a wrong password, so that
neither the answer nor its timing tells a stranger which users exist.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from shoal.security.sasl import (
    SCRAM_SHA_256,
    SCRAM_SHA_512,
    AuthenticationError,
    InvalidCredentials,
)

ITERATIONS_MIN: Final = 4096
"""Kafka's minimum for both mechanisms (RFC 7677 recommends at least 4096)."""
ITERATIONS_MAX: Final = 16384
"""Kafka's maximum (ScramControlManager): more makes each PLAIN check and each new credential
cost more CPU than a broker should spend on one client."""
SALT_BYTES: Final = 32
"""As long as the SHA-256 digest; random per credential."""
SERVER_NONCE_BYTES: Final = 24
"""192 random bits, printed as 32 base64url characters (no ',' so it fits the grammar)."""


@dataclass(frozen=True, slots=True)
class ScramAlgorithm:
    name: str
    hash_name: str
    type_id: int
    """Kafka's ScramMechanism type in DescribeUserScramCredentials / AlterUserScramCredentials."""

    def hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self.hash_name).digest()

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    @property
    def digest_bytes(self) -> int:
        return hashlib.new(self.hash_name).digest_size


SHA_256: Final = ScramAlgorithm(SCRAM_SHA_256, "sha256", 1)
SHA_512: Final = ScramAlgorithm(SCRAM_SHA_512, "sha512", 2)
ALGORITHMS: Final = {a.name: a for a in (SHA_256, SHA_512)}
ALGORITHMS_BY_TYPE: Final = {a.type_id: a for a in (SHA_256, SHA_512)}


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What the server keeps of a password (RFC 5802 section 3): enough to check a proof and
    sign its answer, not enough to log in."""

    salt: bytes = field(repr=False)
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    iterations: int


def salted_password(
    algorithm: ScramAlgorithm, password: bytes, salt: bytes, iterations: int
) -> bytes:
    """Hi(password, salt, i) of RFC 5802: PBKDF2 with HMAC of the mechanism's hash."""
    return hashlib.pbkdf2_hmac(algorithm.hash_name, password, salt, iterations)


def credential_from_salted(
    algorithm: ScramAlgorithm, salted: bytes, salt: bytes, iterations: int
) -> ScramCredential:
    """The credential for a salted password (what AlterUserScramCredentials carries)."""
    client_key = algorithm.hmac(salted, b"Client Key")
    return ScramCredential(
        salt=salt,
        stored_key=algorithm.hash(client_key),
        server_key=algorithm.hmac(salted, b"Server Key"),
        iterations=iterations,
    )


def new_credential(
    algorithm: ScramAlgorithm, password: str, iterations: int, salt: bytes | None = None
) -> ScramCredential:
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    salted = salted_password(algorithm, password.encode(), salt, iterations)
    return credential_from_salted(algorithm, salted, salt, iterations)


def escape_username(name: str) -> str:
    """A user name as the saslname of RFC 5802: ',' as =2C and '=' as =3D."""
    return name.replace("=", "=3D").replace(",", "=2C")


def unescape_username(saslname: str) -> str:
    """The inverse of :func:`escape_username`; any other '=' sequence is malformed."""
    out: list[str] = []
    i = 0
    while i < len(saslname):
        ch = saslname[i]
        if ch == "=":
            code = saslname[i + 1 : i + 3]
            if code == "2C":
                out.append(",")
            elif code == "3D":
                out.append("=")
            else:
                raise InvalidCredentials("malformed saslname: '=' not followed by 2C or 3D")
            i += 3
        elif ch == ",":
            raise InvalidCredentials("malformed saslname: unescaped ','")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


CredentialLookup = Callable[[str, ScramAlgorithm], ScramCredential | None]
"""The stored credential of a user for a mechanism, or None when the user has none."""
DecoyCredential = Callable[[str, ScramAlgorithm], ScramCredential]
"""A credential for a user who has none: the same salt for the same name every time (so
asking twice does not reveal that it is made up), keys that no password matches."""


class _State(enum.Enum):
    CLIENT_FIRST = "expecting client-first"
    CLIENT_FINAL = "expecting client-final"
    COMPLETE = "complete"
    FAILED = "failed"


_NEXT: Final = {
    (_State.CLIENT_FIRST, True): _State.CLIENT_FINAL,
    (_State.CLIENT_FINAL, True): _State.COMPLETE,
    (_State.CLIENT_FIRST, False): _State.FAILED,
    (_State.CLIENT_FINAL, False): _State.FAILED,
}
"""(state, step succeeded) -> next state; COMPLETE and FAILED take no more tokens."""


class ScramServer:
    """The server side of one SCRAM exchange (see the module docstring)."""

    def __init__(
        self,
        algorithm: ScramAlgorithm,
        lookup: CredentialLookup,
        decoy: DecoyCredential,
        *,
        server_nonce: Callable[[], str] | None = None,
    ) -> None:
        self._algorithm = algorithm
        self._lookup = lookup
        self._decoy = decoy
        self._server_nonce = server_nonce or (lambda: secrets.token_urlsafe(SERVER_NONCE_BYTES))
        self._state = _State.CLIENT_FIRST
        self._username = ""
        self._known = False
        self._credential: ScramCredential | None = None
        self._gs2_header = b""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    @property
    def name(self) -> str:
        return self._algorithm.name

    @property
    def complete(self) -> bool:
        return self._state is _State.COMPLETE

    @property
    def principal(self) -> str:
        if self._state is not _State.COMPLETE:
            raise AuthenticationError("the SCRAM exchange has not completed")
        return self._username

    @property
    def credential_expiry_ms(self) -> int | None:
        return None

    def step(self, token: bytes) -> bytes:
        state = self._state
        try:
            if state is _State.CLIENT_FIRST:
                answer = self._client_first(token)
            elif state is _State.CLIENT_FINAL:
                answer = self._client_final(token)
            else:
                raise AuthenticationError(f"SCRAM exchange already {state.value}")
        except AuthenticationError:
            self._state = _NEXT.get((state, False), _State.FAILED)
            self._credential = None
            raise
        self._state = _NEXT[(state, True)]
        return answer

    def _client_first(self, token: bytes) -> bytes:
        text = _ascii_or_utf8(token)
        # gs2-header: cbind flag, authzid, then the bare message.
        flag, sep, rest = text.partition(",")
        if not sep:
            raise InvalidCredentials("client-first has no gs2 header")
        if flag != "n":
            # 'y' or 'p=...': shoal offers no channel binding, as Kafka offers none.
            raise InvalidCredentials("channel binding is not supported")
        authzid_part, sep, bare = rest.partition(",")
        if not sep:
            raise InvalidCredentials("client-first has no authzid field")
        authzid = ""
        if authzid_part:
            if not authzid_part.startswith("a="):
                raise InvalidCredentials("malformed authzid")
            authzid = unescape_username(authzid_part[2:])
        attributes = bare.split(",")
        if len(attributes) < 2 or not attributes[0].startswith("n="):
            raise InvalidCredentials("client-first must start with n=<user>,r=<nonce>")
        if not attributes[1].startswith("r="):
            raise InvalidCredentials("client-first has no nonce")
        if len(attributes) > 2:
            # Kafka's tokenauth (delegation tokens) and any other extension: not offered.
            raise InvalidCredentials("SCRAM extensions are not supported")
        username = unescape_username(attributes[0][2:])
        client_nonce = attributes[1][2:]
        if not username:
            raise InvalidCredentials("empty user name")
        if not client_nonce or not _printable(client_nonce):
            raise InvalidCredentials("malformed client nonce")
        if authzid and authzid != username:
            raise AuthenticationError(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        credential = self._lookup(username, self._algorithm)
        self._known = credential is not None
        if credential is None:
            credential = self._decoy(username, self._algorithm)
        self._username = username
        self._credential = credential
        self._gs2_header = f"n,{authzid_part},".encode()
        self._client_first_bare = bare
        self._nonce = client_nonce + self._server_nonce()
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        return self._server_first.encode()

    def _client_final(self, token: bytes) -> bytes:
        credential = self._credential
        if credential is None:  # cannot happen: set by the first step
            raise InvalidCredentials("no credential")
        text = _ascii_or_utf8(token)
        without_proof, sep, proof_attr = text.rpartition(",")
        if not sep or not proof_attr.startswith("p="):
            raise InvalidCredentials("client-final has no proof")
        attributes = without_proof.split(",")
        if len(attributes) != 2:
            raise InvalidCredentials("client-final must be c=...,r=...,p=... (no extensions)")
        binding, nonce = attributes
        if not binding.startswith("c=") or not nonce.startswith("r="):
            raise InvalidCredentials("client-final must be c=...,r=...,p=...")
        if _b64(binding[2:]) != self._gs2_header:
            raise InvalidCredentials("channel binding data differs from the gs2 header")
        # Kafka's check (ScramSaslServer): the nonce must end with the server-first nonce,
        # client and server parts both. librdkafka before 1.9 (Debian's kcat) sends its
        # client nonce twice in front; the server's fresh random part still has to be there,
        # and the proof covers the nonce as sent, so nothing can be replayed.
        if not nonce[2:].endswith(self._nonce):
            raise InvalidCredentials("the client-final nonce does not end with the server's")
        proof = _b64(proof_attr[2:])
        algorithm = self._algorithm
        if len(proof) != algorithm.digest_bytes:
            raise InvalidCredentials("the proof has the wrong length")
        auth_message = ",".join((self._client_first_bare, self._server_first, without_proof))
        signature = algorithm.hmac(credential.stored_key, auth_message.encode())
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        matches = hmac.compare_digest(algorithm.hash(client_key), credential.stored_key)
        if not (matches and self._known):
            raise InvalidCredentials("invalid client proof")
        server_signature = algorithm.hmac(credential.server_key, auth_message.encode())
        self._credential = None
        return b"v=" + base64.b64encode(server_signature)


def _ascii_or_utf8(token: bytes) -> str:
    try:
        text = token.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCredentials("SCRAM message is not UTF-8") from None
    if "\x00" in text:
        raise InvalidCredentials("SCRAM message holds a NUL")
    return text


def _printable(value: str) -> bool:
    return all("\x21" <= ch <= "\x7e" and ch != "," for ch in value)


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidCredentials("malformed base64") from None
