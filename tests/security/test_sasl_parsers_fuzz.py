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
