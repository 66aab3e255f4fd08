"""Helpers for the admin API tests: a client that sends the CSRF header, and waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import httpx

from shoal.embedded import EmbeddedBroker
from shoal.server.admin.access import CSRF_HEADER

TIMEOUT_S: Final = 30.0
POLL_S: Final = 0.05


def admin_client(broker: EmbeddedBroker, **kwargs: object) -> httpx.Client:
    """An httpx client on ``/api/v1`` that sends the CSRF header, as the console does."""
    return httpx.Client(
        base_url=f"{broker.http_url}/api/v1",
        headers={CSRF_HEADER: "1"},
        timeout=TIMEOUT_S,
        **kwargs,  # type: ignore[arg-type]
    )


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after :data:`TIMEOUT_S`."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL_S)
