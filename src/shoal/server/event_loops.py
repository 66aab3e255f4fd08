"""The event loop a broker runs on: the ``event_loop`` setting.

uvloop (libuv, written in Cython) runs the same asyncio programs with less CPU per event: its
TCP transport, and its TLS layer, which does in compiled code what asyncio's ``sslproto`` does
in Python for every TLS record (feed the memory BIO, call ``SSLObject.read`` into the
protocol's buffer, read the encrypted output and send it). On a TLS listener that work runs
per record a client sends, so it is where uvloop saves the most (``bench/tls_cpu.py``
measures the broker's CPU per megabyte on either loop). asyncio's own loop stays available,
and is what runs where uvloop is not installed (Windows has none).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

EVENT_LOOPS: Final = ("auto", "asyncio", "uvloop")


class EventLoopUnavailable(RuntimeError):
    """``event_loop = "uvloop"`` where uvloop is not installed."""


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the loop ``choice`` names: ``auto`` is uvloop when it is installed, else
    asyncio's. Raises :class:`EventLoopUnavailable` when ``uvloop`` is asked for and missing."""
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise EventLoopUnavailable(
                "event_loop = uvloop, but uvloop is not installed on this Python "
                "(pip install uvloop, or set event_loop = auto or asyncio)"
            ) from None
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
