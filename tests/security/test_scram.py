"""The SCRAM server against RFC 7677's test vector, and its refusals."""

from __future__ import annotations

import base64

import pytest

from shoal.security.sasl import AuthenticationError, InvalidCredentials
from shoal.security.scram import (
    SHA_256,
    SHA_512,
    ScramAlgorithm,
    ScramCredential,
    ScramServer,
    escape_username,
    new_credential,
    salted_password,
    unescape_username,
)

# RFC 7677 section 3: user "user", password "pencil".
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")


def _server(users: dict[str, ScramCredential], algorithm: ScramAlgorithm = SHA_256) -> ScramServer:
    def decoy(user: str, alg: ScramAlgorithm) -> ScramCredential:
        return new_credential(alg, "decoy-never-matches", 4096, salt=b"decoy-salt")

    return ScramServer(
        algorithm,
        lambda user, alg: users.get(user),
        decoy,
        server_nonce=lambda: SERVER_NONCE,
    )


def _rfc_user() -> dict[str, ScramCredential]:
    return {"user": new_credential(SHA_256, "pencil", 4096, salt=SALT)}


def test_rfc7677_vector() -> None:
    server = _server(_rfc_user())
    assert server.step(CLIENT_FIRST) == SERVER_FIRST
    assert not server.complete
    assert server.step(CLIENT_FINAL) == SERVER_FINAL
    assert server.complete
    assert server.principal == "user"
    with pytest.raises(AuthenticationError):
        server.step(CLIENT_FINAL)  # nothing after the end


def test_wrong_password_fails_at_the_proof() -> None:
    server = _server({"user": new_credential(SHA_256, "not-pencil", 4096, salt=SALT)})
    assert server.step(CLIENT_FIRST) == SERVER_FIRST
    with pytest.raises(InvalidCredentials):
        server.step(CLIENT_FINAL)
    assert not server.complete


def test_unknown_user_gets_a_salt_and_fails_like_a_wrong_password() -> None:
    server = _server({})
    first = server.step(CLIENT_FIRST)
    assert first.startswith(b"r=rOprNGfwEbeRWgbNEkqO" + SERVER_NONCE.encode() + b",s=")
    with pytest.raises(InvalidCredentials):
        server.step(CLIENT_FINAL)


def test_unknown_user_fails_even_with_the_decoy_password() -> None:
    # The decoy credential is made from a password here; a proof made with it still fails.
    server = _server({})
    server.step(b"n,,n=user,r=abc")
    salted = salted_password(SHA_256, b"decoy-never-matches", b"decoy-salt", 4096)
    assert salted  # the proof below is computed the client's way
    with pytest.raises(InvalidCredentials):
        server.step(b"c=biws,r=abc" + SERVER_NONCE.encode() + b",p=" + b"A" * 44)


@pytest.mark.parametrize(
    "first",
    [
        b"y,,n=user,r=abc",  # channel binding flags
        b"p=tls-unique,,n=user,r=abc",
        b"n,,n=user,r=abc,tokenauth=true",  # Kafka's delegation-token extension
        b"n,,m=ext,n=user,r=abc",
        b"n,,n=,r=abc",
        b"n,,n=us=er,r=abc",  # '=' must be escaped
        b"n,,r=abc,n=user",
        b"n,,n=user",
        b"n,,n=user,r=a\x00bc",
        b"\xff\xfe",
        b"",
    ],
)
def test_malformed_client_first_is_refused(first: bytes) -> None:
    with pytest.raises(AuthenticationError):
        _server(_rfc_user()).step(first)


def test_authzid_must_be_the_user() -> None:
    with pytest.raises(AuthenticationError, match="authorization id"):
        _server(_rfc_user()).step(b"n,a=admin,n=user,r=abc")
    server = _server(_rfc_user())
    server.step(b"n,a=user,n=user,r=rOprNGfwEbeRWgbNEkqO")  # equal: allowed


@pytest.mark.parametrize(
    "final",
    [
        # the nonce without the server's part (a replayed or forged nonce)
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        # another server nonce appended
        b"c=biws,r=rOprNGfwEbeRWgbNEkqOXXXX,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        # channel binding data other than the gs2 header
        b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        # a proof of the wrong length, or not base64
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!!",
        # an extension
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,x=1,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    ],
)
def test_bad_client_final_is_refused(final: bytes) -> None:
    server = _server(_rfc_user())
    server.step(CLIENT_FIRST)
    with pytest.raises(InvalidCredentials):
        server.step(final)
    assert not server.complete


def test_sha512_round_trip_with_a_client_computed_here() -> None:
    import hashlib
    import hmac

    credential = new_credential(SHA_512, "s3cret", 8192)
    server = _server({"bob,=x": credential}, SHA_512)
    bare = f"n={escape_username('bob,=x')},r=clientnonce"
    first = server.step(f"n,,{bare}".encode()).decode()
    nonce = first.split(",")[0][2:]
    final_bare = f"c=biws,r={nonce}"
    auth = f"{bare},{first},{final_bare}".encode()
    salted = salted_password(SHA_512, b"s3cret", credential.salt, 8192)
    client_key = hmac.new(salted, b"Client Key", "sha512").digest()
    signature = hmac.new(hashlib.sha512(client_key).digest(), auth, "sha512").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    answer = server.step(f"{final_bare},p={base64.b64encode(proof).decode()}".encode())
    server_key = hmac.new(salted, b"Server Key", "sha512").digest()
    assert answer == b"v=" + base64.b64encode(hmac.new(server_key, auth, "sha512").digest())
    assert server.principal == "bob,=x"


def test_username_escaping_round_trips() -> None:
    for name in ["a,b", "a=b", "=2C", "plain", "ünïcode"]:
        assert unescape_username(escape_username(name)) == name
    with pytest.raises(InvalidCredentials):
        unescape_username("a=2")


def test_credential_repr_shows_no_key() -> None:
    credential = new_credential(SHA_256, "pencil", 4096, salt=SALT)
    assert "stored_key" not in repr(credential) and "salt" not in repr(credential)


def test_nonce_with_extra_leading_characters_is_accepted_as_kafka_does() -> None:
    # Old librdkafka (Debian's kcat) repeats its client nonce in front; Kafka checks only that
    # the final nonce ends with the server-first one. The proof covers the nonce as sent.
    import hashlib
    import hmac

    server = _server(_rfc_user())
    server.step(CLIENT_FIRST)
    nonce = "rOprNGfwEbeRWgbNEkqO" + "rOprNGfwEbeRWgbNEkqO" + SERVER_NONCE
    final_bare = f"c=biws,r={nonce}"
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,{SERVER_FIRST.decode()},{final_bare}".encode()
    salted = salted_password(SHA_256, b"pencil", SALT, 4096)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    signature = hmac.new(hashlib.sha256(client_key).digest(), auth, "sha256").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    assert server.step(f"{final_bare},p={proof.decode()}".encode()).startswith(b"v=")
    assert server.principal == "user"
