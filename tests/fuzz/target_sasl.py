"""The SASL servers' parsers: SCRAM-SHA-256/512 client-first and client-final, PLAIN, and
OAUTHBEARER's initial response with the JWT checks behind it (unsecured tokens allowed, so the
fuzzer reaches the claim checks; and a JWKS with one EC key, for the header and signature paths).

Property: a token is accepted or refused with :class:`AuthenticationError` (which the server
answers as SASL_AUTHENTICATION_FAILED); no other exception, no hang.

``data[0]`` picks the mechanism; the rest is split at the first ``0xFF`` byte (never valid
UTF-8, so never inside a real token) into the exchange's tokens, each fed to ``step`` in turn.
The server nonce is fixed, so a seed can carry a client-final whose nonce matches and the
fuzzer reaches the proof check instead of failing at the nonce.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from shoal.security.oauth_jwt import JwtRules, JwtValidator
from shoal.security.oauthbearer import OAuthBearerServer
from shoal.security.sasl import AuthenticationError
from shoal.security.sasl_plain import PlainServer
from shoal.security.scram import (
    ITERATIONS_MIN,
    SHA_256,
    SHA_512,
    ScramAlgorithm,
    ScramCredential,
    ScramServer,
    new_credential,
)

SERVER_NONCE: Final = "fuzzservernonce"
USER: Final = "alice"
PASSWORD: Final = "alice-secret"
SALT: Final = b"fuzz-salt-fuzz-salt-fuzz-salt-32"
MECHANISMS: Final = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN", "OAUTHBEARER", "OAUTHBEARER-JWKS")
"""Picked by the input's first byte: new ones go at the end, so the seeds' bytes keep theirs."""
NOW_S: Final = 1_700_000_000.0
"""The JWT validator's clock: fixed, so an input's outcome does not depend on when it runs."""


@cache
def _credential(algorithm: ScramAlgorithm) -> ScramCredential:
    return new_credential(algorithm, PASSWORD, ITERATIONS_MIN, SALT)


@cache
def _jwks() -> dict[str, Any]:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    key: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(public))
    return {"keys": [{**key, "kid": "fuzz", "alg": "ES256", "use": "sig"}]}


def _server(mechanism: str) -> ScramServer | PlainServer | OAuthBearerServer:
    if mechanism == "OAUTHBEARER":
        unsecured = JwtValidator(JwtRules(allow_unsecured=True), now_s=lambda: NOW_S)
        return OAuthBearerServer(unsecured)
    if mechanism == "OAUTHBEARER-JWKS":
        rules = JwtRules(expected_issuer="fuzz", expected_audience=("shoal",))
        return OAuthBearerServer(JwtValidator(rules, _jwks(), now_s=lambda: NOW_S))
    if mechanism == "PLAIN":
        return PlainServer(lambda user, password: (user, password) == (USER, PASSWORD))
    algorithm = SHA_256 if mechanism == "SCRAM-SHA-256" else SHA_512
    return ScramServer(
        algorithm,
        lambda user, alg: _credential(alg) if user == USER else None,
        lambda _user, alg: _credential(alg),
        server_nonce=lambda: SERVER_NONCE,
    )


def one_input(data: bytes) -> None:
    if not data:
        return
    server = _server(MECHANISMS[data[0] % len(MECHANISMS)])
    for token in data[1:].split(b"\xff", 1):
        try:
            server.step(token)
        except AuthenticationError:
            return
