"""Authentication of the HTTP face: HTTP basic against the broker's users, or a bearer JWT.

Every path but the open ones (``/livez``: an orchestrator's liveness probe carries no
credentials) answers 401 without valid credentials, in the schema registry's error shape so
registry clients report it as Confluent's does. The authenticated principal (``User:<name>``)
is put in the ASGI scope under :data:`PRINCIPAL_SCOPE_KEY` for the routes that authorize.

Checking a password costs a salted, iterated hash (thousands of HMAC rounds, by design), so it
runs on a worker thread, never on the event loop the Kafka listener shares; a recent success is
remembered for a short while under a keyed digest of the credentials (never the password), so a
scraper polling /metrics every few seconds costs one hash a minute, not one a request. What is
remembered is forgotten as soon as the users change (``credentials_version`` moves): a deleted
user or a changed password loses HTTP access at once, as a new Kafka SASL login would.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from shoal.registry.access import PRINCIPAL_SCOPE_KEY

OPEN_PATHS: Final = frozenset({"/livez"})
REMEMBER_S: Final = 60.0
"""How long a verified credential is trusted without hashing it again."""
REMEMBERED_MAX: Final = 1024
"""Verified credentials remembered at most (least recently used dropped first)."""

PasswordCheck = Callable[[str, str], bool]
"""``(user, password) -> ok``: the broker's user store (SCRAM credentials)."""
CredentialsVersion = Callable[[], int]
"""The user store's change counter: a remembered success counts only at the version it was
checked at."""
TokenCheck = Callable[[str], str | None]
"""``token -> principal name`` or None: a JWT validator."""


@dataclass
class HttpAuthentication:
    """Which credentials the HTTP face accepts; none configured means no authentication."""

    check_password: PasswordCheck | None = None
    check_token: TokenCheck | None = None
    realm: str = "shoal"
    open_paths: Collection[str] = OPEN_PATHS
    clock: Callable[[], float] = time.monotonic
    credentials_version: CredentialsVersion = lambda: 0
    _key: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    _remembered: OrderedDict[bytes, tuple[str, float, int]] = field(
        default_factory=OrderedDict, repr=False
    )

    @property
    def enabled(self) -> bool:
        return self.check_password is not None or self.check_token is not None

    async def principal(self, authorization: str | None) -> str | None:
        """The principal the ``Authorization`` header proves, or None."""
        if not authorization:
            return None
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "basic" and self.check_password is not None:
            return await self._basic(credentials)
        if scheme == "bearer" and self.check_token is not None and credentials:
            check = self.check_token
            name = await asyncio.to_thread(check, credentials)
            return None if name is None else f"User:{name}"
        return None

    async def _basic(self, credentials: str) -> str | None:
        check = self.check_password
        if check is None:
            return None
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep or not user:
            return None
        digest = hmac.new(self._key, decoded.encode(), hashlib.sha256).digest()
        now = self.clock()
        # Read before the check: a change made while the hash runs makes this success stale.
        version = self.credentials_version()
        known = self._remembered.get(digest)
        if known is not None and known[1] > now and known[2] == version:
            self._remembered.move_to_end(digest)
            return known[0]
        if not await asyncio.to_thread(check, user, password):
            return None
        principal = f"User:{user}"
        self._remembered[digest] = (principal, now + REMEMBER_S, version)
        while len(self._remembered) > REMEMBERED_MAX:
            self._remembered.popitem(last=False)
        return principal

    def challenge(self) -> str:
        schemes = []
        if self.check_password is not None:
            schemes.append(f'Basic realm="{self.realm}"')
        if self.check_token is not None:
            schemes.append(f'Bearer realm="{self.realm}"')
        return ", ".join(schemes)


class RequireAuthentication:
    """ASGI middleware: a request without valid credentials gets 401 and goes no further."""

    def __init__(self, app: ASGIApp, authentication: HttpAuthentication) -> None:
        self._app = app
        self._auth = authentication

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._auth.open_paths:
            await self._app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        principal = await self._auth.principal(header)
        if principal is None:
            await _unauthorized(send, self._auth.challenge())
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self._app(scope, receive, send)


async def _unauthorized(send: Send, challenge: str) -> None:
    body = json.dumps(
        {"error_code": 401, "message": "Unauthorized: valid credentials are required"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
