"""confluent-kafka with OAUTHBEARER against a SASL_PLAINTEXT shoal broker: unsecured tokens
when the broker allows them, and signed JWTs validated against a JWKS file; expired tokens and
a wrong issuer or audience are refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from shoal.embedded import EmbeddedBroker
from tests.support.jwt_keys import SigningKey
from tests.support.sasl import auth_error

pytestmark = pytest.mark.integration


def _config(broker: EmbeddedBroker, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": broker.bootstrap_servers,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        **extra,
    }


def _token_cb(token: str, lifetime_s: float = 300) -> Callable[[str], tuple[str, float]]:
    def cb(_config: str) -> tuple[str, float]:
        return token, time.time() + lifetime_s

    return cb


def _produces(config: dict[str, Any]) -> None:
    producer = Producer(config)
    producer.produce("oauth-topic", b"v")
    assert producer.flush(30) == 0


def test_unsecured_token_when_allowed(sasl_broker_factory: Callable[..., EmbeddedBroker]) -> None:
    broker = sasl_broker_factory(
        mechanisms=["OAUTHBEARER", "SCRAM-SHA-512"], sasl_oauthbearer_allow_unsecured=True
    )
    _produces(
        _config(
            broker,
            **{
                "enable.sasl.oauthbearer.unsecure.jwt": True,
                "sasl.oauthbearer.config": "principal=alice",
            },
        )
    )


def test_unsecured_token_refused_by_default(
    sasl_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path
) -> None:
    key = SigningKey()
    broker = sasl_broker_factory(
        mechanisms=["OAUTHBEARER", "SCRAM-SHA-512"],
        sasl_oauthbearer_jwks_endpoint_url=str(key.write_jwks(tmp_path / "jwks.json")),
    )
    error = auth_error(
        _config(
            broker,
            **{
                "enable.sasl.oauthbearer.unsecure.jwt": True,
                "sasl.oauthbearer.config": "principal=alice",
            },
        )
    )
    assert "invalid_token" in error.str()


@pytest.fixture
def signed_broker(
    sasl_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path
) -> tuple[EmbeddedBroker, SigningKey]:
    key = SigningKey()
    jwks = key.write_jwks(tmp_path / "jwks.json")
    broker = sasl_broker_factory(
        mechanisms=["OAUTHBEARER", "SCRAM-SHA-512"],
        sasl_oauthbearer_jwks_endpoint_url=f"file://{jwks}",
        sasl_oauthbearer_expected_issuer="https://idp.example",
        sasl_oauthbearer_expected_audience="kafka",
    )
    return broker, key


def test_signed_token_validated_against_the_jwks_file(
    signed_broker: tuple[EmbeddedBroker, SigningKey],
) -> None:
    broker, key = signed_broker
    token = key.token(iss="https://idp.example", aud="kafka")
    _produces(_config(broker, oauth_cb=_token_cb(token)))


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://idp.example", "aud": "kafka", "lifetime_s": -600},
        {"iss": "https://evil.example", "aud": "kafka"},
        {"iss": "https://idp.example", "aud": "other"},
    ],
    ids=["expired", "wrong-issuer", "wrong-audience"],
)
def test_bad_tokens_are_refused(
    signed_broker: tuple[EmbeddedBroker, SigningKey], claims: dict[str, Any]
) -> None:
    broker, key = signed_broker
    token = key.token(**claims)
    # librdkafka checks nothing itself: tell it the token is good for five minutes.
    error = auth_error(_config(broker, oauth_cb=_token_cb(token)))
    assert "invalid_token" in error.str()
