"""SASL settings: refused combinations, and the JWKS read from a file or an HTTP endpoint and
refreshed from it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shoal.security.oauth_jwt import JwtValidator
from shoal.security.oauthbearer import TokenError
from shoal.server.sasl_config import refresh_jwks_forever, sasl_server_config
from shoal.server.settings import Settings, SettingsError
from tests.support.jwt_keys import SigningKey

SASL = replace(Settings(), listeners="SASL_PLAINTEXT://127.0.0.1:9092")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sasl_enabled_mechanisms": "GSSAPI"}, "GSSAPI"),
        ({"sasl_enabled_mechanisms": ""}, "none given"),
        ({"sasl_enabled_mechanisms": "OAUTHBEARER"}, "jwks_endpoint_url"),
        ({"connections_max_reauth_ms": -1}, "connections_max_reauth_ms"),
        ({"sasl_server_max_receive_size": 10}, "sasl_server_max_receive_size"),
        ({"sasl_plain_users_file": "/nonexistent/users"}, "sasl_plain_users_file"),
        (
            {"sasl_enabled_mechanisms": "OAUTHBEARER", "sasl_oauthbearer_jwks_endpoint_url": "/no"},
            "jwks_endpoint_url",
        ),
    ],
)
def test_bad_settings_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        sasl_server_config(replace(SASL, **changes))  # type: ignore[arg-type]


def test_defaults() -> None:
    config = sasl_server_config(SASL)
    assert config.enabled_mechanisms == ("SCRAM-SHA-512", "SCRAM-SHA-256")
    assert config.connection_failed_authentication_delay_ms == 100
    assert config.max_receive_bytes == 512 * 1024


class _Jwks:
    """A JWKS endpoint on loopback whose document a test can replace."""

    def __init__(self, document: dict[str, object]) -> None:
        self.document = document
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def endpoint() -> Iterator[_Jwks]:
    first = SigningKey("k1")
    served = _Jwks(first.jwks())
    served.key = first  # type: ignore[attr-defined]
    yield served
    served.server.shutdown()
    served.server.server_close()


def test_jwks_from_http_and_refreshed(endpoint: _Jwks) -> None:
    settings = replace(
        SASL,
        sasl_enabled_mechanisms="OAUTHBEARER",
        sasl_oauthbearer_jwks_endpoint_url=endpoint.url,
        sasl_oauthbearer_jwks_endpoint_refresh_ms=1000,
    )
    config = sasl_server_config(settings)
    assert config is not None and isinstance(config.oauth_validator, JwtValidator)
    validator = config.oauth_validator
    first: SigningKey = endpoint.key  # type: ignore[attr-defined]
    assert validator.validate(first.token()).principal == "alice"
    rotated = SigningKey("k2")
    endpoint.document = rotated.jwks()
    with pytest.raises(TokenError):
        validator.validate(rotated.token())  # not fetched yet

    async def refresh_once() -> None:
        task = asyncio.ensure_future(refresh_jwks_forever(config, settings))
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                try:
                    validator.validate(rotated.token())
                    return
                except TokenError:
                    continue
        finally:
            task.cancel()

    asyncio.run(refresh_once())
    assert validator.validate(rotated.token()).principal == "alice"
    with pytest.raises(TokenError):
        validator.validate(first.token())  # the old key is gone with its document


def test_jwks_file_url(tmp_path: Path) -> None:
    key = SigningKey()
    path = key.write_jwks(tmp_path / "jwks.json")
    config = sasl_server_config(
        replace(
            SASL,
            sasl_enabled_mechanisms="OAUTHBEARER",
            sasl_oauthbearer_jwks_endpoint_url=f"file://{path}",
        )
    )
    assert config is not None and config.oauth_validator is not None
    assert config.oauth_validator.validate(key.token()).principal == "alice"
