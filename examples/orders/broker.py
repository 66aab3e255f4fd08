"""The broker URL the services connect to, for any URL the scenario is given.

``embedded://PATH`` makes each App start its own in-process broker on PATH; four services need
one shared broker instead, so this starts it once and hands them its ``kafka://`` address.
Every other URL (kafka://, amqp://, redis://, nats://, memory://) is used as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from shoal.embedded import EmbeddedBroker


@asynccontextmanager
async def shared_broker_url(url: str) -> AsyncIterator[str]:
    parts = urlsplit(url)
    if parts.scheme != "embedded":
        yield url
        return
    data_dir = parts.netloc + parts.path
    if not data_dir:
        raise ValueError("embedded:// needs a data directory: embedded://PATH")
    broker = await asyncio.to_thread(EmbeddedBroker(data_dir).start)
    try:
        yield f"kafka://{broker.bootstrap_servers}"
    finally:
        await asyncio.to_thread(broker.stop)
