"""What a handler knows about the request besides its body."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    client_id: str | None
    client_host: str
    client_port: int
    principal: str = "User:ANONYMOUS"
