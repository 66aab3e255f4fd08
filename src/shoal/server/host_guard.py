"""Refuse requests that name another site in their Host header, on an HTTP face that listens on
loopback only.

Such a face has no other guard by default (no HTTP authentication on 127.0.0.1), and the
browser's same-origin rule does not protect it from DNS rebinding: a page of attacker.example
re-resolves its own name to 127.0.0.1 and, being same-origin with itself, may then send the
admin API's CSRF header and read the answers. Its requests still carry ``Host:
attacker.example``, so a face bound to loopback answers only Host names that are loopback
(``localhost``, ``*.localhost``, 127.0.0.0/8, ``[::1]``). A face bound to another address needs
authentication (``--allow-insecure`` otherwise), and its host names are the operator's choice,
so it is not guarded here.
"""

from __future__ import annotations

import ipaddress

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is loopback."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_of(header: str) -> str:
    """The host part of a Host header value: ``[::1]:8080`` -> ``::1``, ``a:80`` -> ``a``."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class LoopbackHostGuard:
    """ASGI middleware: 421 Misdirected Request for a Host that is not loopback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = next((v for k, v in scope["headers"] if k == b"host"), b"").decode("latin-1")
            if not is_loopback(host_of(header)):
                response = PlainTextResponse(
                    f"this server listens on loopback only and answers requests for localhost "
                    f"or 127.0.0.1, not for Host {header!r} (a DNS-rebinding page, or a proxy "
                    "that should pass the original Host)",
                    status_code=421,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
