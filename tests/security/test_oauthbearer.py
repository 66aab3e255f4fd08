"""OAUTHBEARER's message and the JWT rules (signature, exp/nbf/iat, issuer, audience, subject
claim, scopes, unsecured tokens only when allowed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shoal.security.oauth_jwt import JwtRules, JwtValidator
from shoal.security.oauthbearer import OAuthBearerServer, TokenError, parse_initial_response
from shoal.security.sasl import AuthenticationError
from tests.support.jwt_keys import SigningKey, unsecured_token

KEY = SigningKey()


def _message(token: str, authzid: str = "") -> bytes:
    a = f"a={authzid}" if authzid else ""
    return f"n,{a},\x01auth=Bearer {token}\x01\x01".encode()


def _validator(**rules: Any) -> JwtValidator:
    return JwtValidator(JwtRules(**rules), KEY.jwks())


def test_parse_initial_response() -> None:
    assert parse_initial_response(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01") == ("", "abc.def.ghi")
    assert parse_initial_response(b"n,a=bob,\x01host=x\x01auth=Bearer t\x01\x01") == ("bob", "t")


def test_signed_token_logs_in_with_its_subject_and_expiry() -> None:
    server = OAuthBearerServer(_validator())
    token = KEY.token(lifetime_s=120)
    assert server.step(_message(token)) == b""
    assert server.complete and server.principal == "alice"
    assert server.credential_expiry_ms is not None


def test_subject_claim_name_is_configurable() -> None:
    validator = _validator(sub_claim_name="client_id")
    assert validator.validate(KEY.token(client_id="svc-1")).principal == "svc-1"
    with pytest.raises(TokenError):
        validator.validate(KEY.token(client_id=None))


@pytest.mark.parametrize(
    ("rules", "claims"),
    [
        ({}, {"lifetime_s": -120}),  # expired beyond the 30 s skew
        ({}, {"nbf": 4_000_000_000}),
        ({}, {"iat": 4_000_000_000}),
        ({"expected_issuer": "https://idp"}, {"iss": "https://other"}),
        ({"expected_issuer": "https://idp"}, {}),
        ({"expected_audience": ["kafka"]}, {"aud": "other"}),
        ({"expected_audience": ["kafka"]}, {"aud": ["x", "y"]}),
        ({}, {"sub": None}),
    ],
)
def test_invalid_claims_are_refused(rules: dict[str, Any], claims: dict[str, Any]) -> None:
    with pytest.raises(TokenError):
        _validator(**rules).validate(KEY.token(**claims))


def test_expected_issuer_and_audience_pass() -> None:
    validator = _validator(expected_issuer="https://idp", expected_audience=["kafka", "x"])
    assert validator.validate(KEY.token(iss="https://idp", aud=["kafka"])).principal == "alice"


def test_token_from_another_key_is_refused() -> None:
    other = SigningKey(kid=KEY.kid)  # same kid, different key
    with pytest.raises(TokenError):
        _validator().validate(other.token())


def test_unsecured_tokens_only_when_allowed() -> None:
    with pytest.raises(TokenError):
        _validator().validate(unsecured_token())
    assert JwtValidator(JwtRules(allow_unsecured=True)).validate(unsecured_token()).principal == (
        "alice"
    )


def test_scopes_when_required() -> None:
    validator = _validator(required_scopes=["kafka.write"])
    assert validator.validate(KEY.token(scope="read kafka.write")).principal == "alice"
    with pytest.raises(TokenError) as raised:
        validator.validate(KEY.token(scope="read"))
    assert raised.value.status == "insufficient_scope"


def test_refused_token_answers_the_rfc7628_json_error_then_fails() -> None:
    server = OAuthBearerServer(_validator())
    challenge = server.step(_message(KEY.token(lifetime_s=-300)))
    assert json.loads(challenge) == {"status": "invalid_token"}
    with pytest.raises(AuthenticationError) as raised:
        server.step(b"\x01")
    assert json.loads(str(raised.value)) == {"status": "invalid_token"}
    assert not server.complete


def test_authzid_must_match_the_principal() -> None:
    with pytest.raises(AuthenticationError, match="authorization id"):
        OAuthBearerServer(_validator()).step(_message(KEY.token(), authzid="bob"))


def test_hmac_token_signed_with_the_public_key_is_refused() -> None:
    import jwt

    public_pem = KEY.jwks()["keys"][0]["n"]  # any public material as an HMAC secret
    forged = jwt.encode({"sub": "alice", "exp": 4_000_000_000}, public_pem, algorithm="HS256")
    with pytest.raises(TokenError):
        _validator().validate(forged)


def test_scope_as_a_list_and_odd_scope_claims() -> None:
    validator = _validator(required_scopes=["write"])
    assert validator.validate(KEY.token(scope=["read", "write"])).principal == "alice"
    for odd in ([{"x": 1}], 7, {"write": True}):
        with pytest.raises(TokenError):
            validator.validate(KEY.token(scope=odd))


def test_principal_of_for_the_http_bearer_check() -> None:
    validator = _validator()
    assert validator.principal_of(KEY.token()) == "alice"
    assert validator.principal_of(KEY.token(lifetime_s=-300)) is None
    assert validator.principal_of("not a jwt") is None
