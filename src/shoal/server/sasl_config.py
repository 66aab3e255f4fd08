"""The SASL listener configuration from the broker settings, and the OAuth keys' I/O.

Reading the JWKS (a file or an HTTPS endpoint) is I/O, so it lives here, in the server, and
the sans-IO validator (:class:`~shoal.security.oauth_jwt.JwtValidator`) is handed the parsed
document, at start and at each refresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import httpx

from shoal.security.oauth_jwt import JwtRules, JwtValidator
from shoal.security.plain_users import UsersFileError, parse_users
from shoal.security.sasl import MECHANISMS, OAUTHBEARER
from shoal.server.authentication import SaslServerConfig
from shoal.server.settings import Settings, SettingsError

log = logging.getLogger(__name__)

JWKS_FETCH_TIMEOUT_S: Final = 10.0
JWKS_BYTES_MAX: Final = 1024 * 1024
"""A JWKS holds a few keys; a larger document is refused rather than parsed."""


def _names(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def sasl_server_config(settings: Settings) -> SaslServerConfig:
    """The SASL listeners' configuration (SASL_PLAINTEXT and SASL_SSL share it); SettingsError
    for a bad combination."""
    mechanisms = _names(settings.sasl_enabled_mechanisms)
    unknown = [m for m in mechanisms if m not in MECHANISMS]
    if unknown or not mechanisms:
        raise SettingsError(
            f"sasl_enabled_mechanisms: {', '.join(unknown) or 'none given'}; choose from "
            f"{', '.join(MECHANISMS)}"
        )
    if settings.connections_max_reauth_ms < 0:
        raise SettingsError("connections_max_reauth_ms must be 0 (off) or more")
    if settings.connection_failed_authentication_delay_ms < 0:
        raise SettingsError("connection_failed_authentication_delay_ms must be 0 or more")
    if settings.sasl_server_max_receive_size < 1024:
        raise SettingsError("sasl_server_max_receive_size must be at least 1024 bytes")
    validator = jwt_validator(settings, "OAUTHBEARER") if OAUTHBEARER in mechanisms else None
    plain_users = None
    if settings.sasl_plain_users_file:
        path = settings.sasl_plain_users_file
        try:
            plain_users = parse_users(Path(path).read_text(encoding="utf-8"), path)
        except (OSError, UnicodeDecodeError, UsersFileError) as exc:
            raise SettingsError(f"sasl_plain_users_file: {exc}") from exc
    return SaslServerConfig(
        enabled_mechanisms=mechanisms,
        connections_max_reauth_ms=settings.connections_max_reauth_ms,
        connection_failed_authentication_delay_ms=(
            settings.connection_failed_authentication_delay_ms
        ),
        max_receive_bytes=settings.sasl_server_max_receive_size,
        oauth_validator=validator,
        plain_users=plain_users,
    )


def jwt_validator(settings: Settings, user: str) -> JwtValidator:
    """The token validator of the ``sasl_oauthbearer_*`` settings, its keys loaded (blocking);
    ``user`` names what needs it in the error (OAUTHBEARER, the HTTP face's bearer tokens)."""
    validator = JwtValidator(_jwt_rules(settings))
    url = settings.sasl_oauthbearer_jwks_endpoint_url
    if url:
        try:
            validator.replace_keys(load_jwks(url))
        except (OSError, ValueError, httpx.HTTPError) as exc:
            raise SettingsError(f"sasl_oauthbearer_jwks_endpoint_url {url!r}: {exc}") from exc
    elif not settings.sasl_oauthbearer_allow_unsecured:
        raise SettingsError(
            f"{user} needs sasl_oauthbearer_jwks_endpoint_url (the keys that sign tokens), or "
            "sasl_oauthbearer_allow_unsecured for tests"
        )
    return validator


def _jwt_rules(settings: Settings) -> JwtRules:
    return JwtRules(
        expected_issuer=settings.sasl_oauthbearer_expected_issuer,
        expected_audience=_names(settings.sasl_oauthbearer_expected_audience),
        sub_claim_name=settings.sasl_oauthbearer_sub_claim_name,
        scope_claim_name=settings.sasl_oauthbearer_scope_claim_name,
        required_scopes=_names(settings.sasl_oauthbearer_required_scopes),
        clock_skew_s=settings.sasl_oauthbearer_clock_skew_seconds,
        allow_unsecured=settings.sasl_oauthbearer_allow_unsecured,
    )


def load_jwks(url: str) -> dict[str, Any]:
    """The JWKS document at ``url`` (https://, http://, file:// or a path). Blocking."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        response = httpx.get(url, timeout=JWKS_FETCH_TIMEOUT_S, follow_redirects=False)
        response.raise_for_status()
        data = response.content
    else:
        path = Path(parsed.path if parsed.scheme == "file" else url)
        if path.stat().st_size > JWKS_BYTES_MAX:
            raise ValueError(f"{path} is larger than {JWKS_BYTES_MAX} bytes")
        data = path.read_bytes()
    if len(data) > JWKS_BYTES_MAX:
        raise ValueError(f"the JWKS is larger than {JWKS_BYTES_MAX} bytes")
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("a JWKS is a JSON object")
    return doc


async def refresh_jwks_forever(config: SaslServerConfig, settings: Settings) -> None:
    """Refetch the JWKS every refresh interval (an identity provider rotates its keys); a
    failed fetch keeps the keys in use and is logged."""
    validator = config.oauth_validator
    url = settings.sasl_oauthbearer_jwks_endpoint_url
    if not isinstance(validator, JwtValidator) or not url:
        return
    interval_s = max(settings.sasl_oauthbearer_jwks_endpoint_refresh_ms, 1000) / 1000
    while True:
        await asyncio.sleep(interval_s)
        try:
            validator.replace_keys(await asyncio.to_thread(load_jwks, url))
        except (OSError, ValueError, httpx.HTTPError) as exc:
            log.warning("cannot refresh the OAuth JWKS from %s: %s", url, exc)
