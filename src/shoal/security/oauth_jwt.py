"""JWT validation for OAUTHBEARER, as Kafka's broker validator does it.

The token must be a JWS signed by one of the configured keys (a JWKS document: Kafka's
``sasl.oauthbearer.jwks.endpoint.url`` names a file or an HTTPS URL; reading it is I/O, done by
the server, which hands the parsed document here), with an ``exp`` in the future, ``nbf`` and
``iat`` not in the future (each with ``sasl.oauthbearer.clock.skew.seconds`` of slack), the
expected issuer and audience when configured, the principal in the claim named by
``sasl.oauthbearer.sub.claim.name`` (``sub``), and the required scopes when configured.

Unsecured tokens (``alg: none``, Kafka's OAuthBearerUnsecuredValidatorCallbackHandler, meant
for tests) are accepted only when ``allow_unsecured`` is set; their claims are checked the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt

from shoal.security.oauthbearer import TokenError, ValidToken

ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Signatures checked with a public key. HMAC (HS*) is refused: a JWKS is public, and a
token 'signed' with a public key as an HMAC secret must not pass (key confusion)."""


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    alg: str | None
    """The algorithm the JWKS names for the key, if any: then only that one is accepted."""
    jwk: jwt.PyJWK


@dataclass(frozen=True, slots=True)
class JwtRules:
    expected_issuer: str = ""
    expected_audience: Sequence[str] = ()
    sub_claim_name: str = "sub"
    scope_claim_name: str = "scope"
    required_scopes: Sequence[str] = ()
    clock_skew_s: int = 30
    allow_unsecured: bool = False


class JwtValidator:
    def __init__(
        self,
        rules: JwtRules,
        jwks: Mapping[str, Any] | None = None,
        *,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        self._rules = rules
        self._now_s = now_s
        self._lock = threading.Lock()
        self._keys: list[_Key] = []
        if jwks is not None:
            self.replace_keys(jwks)

    def replace_keys(self, jwks: Mapping[str, Any]) -> None:
        """Use the keys of a new JWKS document (a refresh); ValueError when it has none
        usable, and the keys in use are then kept."""
        entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(entries, list):
            raise ValueError("a JWKS is a JSON object with a 'keys' list")
        keys: list[_Key] = []
        for entry in entries:
            if (
                not isinstance(entry, dict)
                or entry.get("kty") == "oct"
                or entry.get("use") == "enc"
            ):
                continue  # symmetric and encryption keys never verify a token
            try:
                keys.append(_Key(entry.get("kid"), entry.get("alg"), jwt.PyJWK(entry)))
            except (jwt.PyJWTError, TypeError, KeyError, ValueError):
                continue  # Kafka's resolver skips keys it cannot use, too
        if not keys:
            raise ValueError("the JWKS has no usable signature-verification key")
        with self._lock:
            self._keys = keys

    def principal_of(self, token: str) -> str | None:
        """The token's principal name, or None when it is not valid: the shape of the HTTP
        face's bearer check (shoal.server.http_auth's TokenCheck)."""
        try:
            return self.validate(token).principal
        except TokenError:
            return None

    def validate(self, token: str) -> ValidToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"not a JWT: {exc}") from None
        alg = header.get("alg")
        if alg == "none":
            if not self._rules.allow_unsecured:
                raise TokenError("unsecured (alg none) tokens are not allowed")
            claims = self._unverified_claims(token)
        else:
            claims = self._verified_claims(token, header)
        return self._check_claims(claims)

    @staticmethod
    def _unverified_claims(token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise TokenError(f"malformed token: {exc}") from None
        return dict(claims)

    def _verified_claims(self, token: str, header: Mapping[str, Any]) -> dict[str, Any]:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:
            raise TokenError(f"signature algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("the token's kid is not a string")
        with self._lock:
            keys = list(self._keys)
        candidates = [k for k in keys if (kid is None or k.kid == kid) and k.alg in (None, alg)]
        if not candidates:
            raise TokenError(f"no configured key has id {kid!r} for {alg}")
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key=key.jwk.key,
                    algorithms=[str(alg)],
                    # The claims are checked below, the same way for every kind of token.
                    options={
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                        "verify_aud": False,
                        "verify_iss": False,
                    },
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise TokenError(f"token refused: {exc}") from None
            return dict(claims)
        raise TokenError("the signature matches no configured key")

    def _check_claims(self, claims: Mapping[str, Any]) -> ValidToken:
        rules = self._rules
        now = self._now_s()
        skew = rules.clock_skew_s
        exp = _number(claims, "exp", required=True)
        if exp is None or exp + skew <= now:
            raise TokenError("the token has expired")
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf - skew > now:
            raise TokenError("the token is not valid yet (nbf)")
        iat = _number(claims, "iat")
        if iat is not None and iat - skew > now:
            raise TokenError("the token was issued in the future (iat)")
        if rules.expected_issuer and claims.get("iss") != rules.expected_issuer:
            raise TokenError("the token's issuer is not the expected one")
        if rules.expected_audience:
            audience = claims.get("aud")
            audiences = [audience] if isinstance(audience, str) else audience
            if not isinstance(audiences, list) or not set(rules.expected_audience) & {
                a for a in audiences if isinstance(a, str)
            }:
                raise TokenError("the token's audience is not an expected one")
        principal = claims.get(rules.sub_claim_name)
        if not isinstance(principal, str) or not principal.strip():
            raise TokenError(f"the token has no {rules.sub_claim_name!r} claim")
        if rules.required_scopes:
            scope = claims.get(rules.scope_claim_name, "")
            # A space-separated string (RFC 8693) or a list of strings, as identity providers
            # write it; anything else grants nothing.
            listed = scope.split() if isinstance(scope, str) else scope
            granted = (
                {s for s in listed if isinstance(s, str)} if isinstance(listed, list) else set()
            )
            missing = [s for s in rules.required_scopes if s not in granted]
            if missing:
                raise TokenError(
                    "the token lacks a required scope",
                    status="insufficient_scope",
                    scope=" ".join(rules.required_scopes),
                )
        return ValidToken(principal=principal, expiry_ms=int(exp * 1000))


def _number(claims: Mapping[str, Any], name: str, *, required: bool = False) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenError(f"the token has no {name!r} claim")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenError(f"the token's {name!r} claim is not a number")
    return float(value)
