"""Hypothesis over the SASL parsers: whatever the bytes, a mechanism answers or raises
AuthenticationError, never anything else."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.security.oauth_jwt import JwtRules, JwtValidator
from shoal.security.oauthbearer import OAuthBearerServer
from shoal.security.sasl import AuthenticationError
from shoal.security.sasl_plain import PlainServer
from shoal.security.scram import SHA_256, SHA_512, ScramServer, new_credential

CREDENTIAL = new_credential(SHA_256, "pencil", 4096, salt=b"salt")
tokens = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.lists(
        st.sampled_from(
            [
                "n",
                "y",
                "p=x",
                "a=",
                "n=",
                "r=",
                "c=",
                "p=",
                "=2C",
                "=3D",
                "=",
                ",",
                "biws",
                "user",
                "\x01",
                "auth=Bearer ",
                "\x00",
                "m=1",
                "tokenauth=true",
            ]
        ),
        max_size=12,
    ).map(lambda parts: ",".join(parts).encode()),
)


def _scram(algorithm_512: bool) -> ScramServer:
    algorithm = SHA_512 if algorithm_512 else SHA_256
    return ScramServer(
        algorithm,
        lambda user, alg: CREDENTIAL if user == "user" else None,
        lambda user, alg: CREDENTIAL,
    )


@settings(max_examples=300, deadline=None)
@given(first=tokens, final=tokens, sha512=st.booleans())
def test_scram_garbage_raises_only_authentication_error(
    first: bytes, final: bytes, sha512: bool
) -> None:
    server = _scram(sha512)
    try:
        server.step(first)
        server.step(final)
    except AuthenticationError:
        return
    raise AssertionError("garbage authenticated")


@settings(max_examples=300, deadline=None)
@given(token=tokens)
def test_plain_garbage_raises_only_authentication_error(token: bytes) -> None:
    server = PlainServer(lambda user, password: False)
    try:
        server.step(token)
    except AuthenticationError:
        return
    raise AssertionError("garbage authenticated")


@settings(max_examples=300, deadline=None)
@given(
    token=st.one_of(
        tokens,
        st.text(max_size=200).map(lambda t: f"n,,\x01auth=Bearer {t}\x01\x01".encode()),
    ),
    ack=tokens,
)
def test_oauthbearer_garbage_raises_only_authentication_error(token: bytes, ack: bytes) -> None:
    server = OAuthBearerServer(JwtValidator(JwtRules(allow_unsecured=True)))
    try:
        server.step(token)
        server.step(ack)
    except AuthenticationError:
        return
    raise AssertionError("garbage authenticated")


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
claim_sets = st.dictionaries(
    st.sampled_from(["sub", "exp", "nbf", "iat", "iss", "aud", "scope", "alg", "kid", "typ"]),
    json_values,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(header=claim_sets, claims=claim_sets, signature=st.binary(max_size=64))
def test_jwt_validation_of_garbage_claims_raises_only_token_error(
    header: dict[str, object], claims: dict[str, object], signature: bytes
) -> None:
    import json

    from shoal.security.oauthbearer import TokenError
    from tests.support.jwt_keys import SigningKey

    global _KEY
    if _KEY is None:
        _KEY = SigningKey()
    token = ".".join(
        (
            _b64url(json.dumps(header).encode()),
            _b64url(json.dumps(claims).encode()),
            _b64url(signature),
        )
    )
    for allow_unsecured in (False, True):
        validator = JwtValidator(
            JwtRules(
                allow_unsecured=allow_unsecured,
                expected_audience=["kafka"],
                required_scopes=["write"],
            ),
            _KEY.jwks(),
        )
        try:
            validator.validate(token)
        except TokenError:
            continue


_KEY = None
