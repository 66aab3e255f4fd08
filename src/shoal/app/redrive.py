"""Redrive: dead-lettered records back to the topics they came from.

A module of its own, above both the App and the DLQ's header vocabulary
(:mod:`shoal.app.resilience.dlq`): it drives an App (a started one, or one it starts for a
broker URL), while the DLQ module is used by the App's runner, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.app.app import App
from shoal.app.message import Message
from shoal.app.resilience.dlq import ORIGINAL_TOPIC, PREFIX


async def redrive(
    app: App | str,
    dlq: str,
    *,
    where: Callable[[Message], bool] | None = None,
) -> int:
    """Republish the records of DLQ topic ``dlq`` (those ``where`` accepts, default all) to the
    topics they came from, with their original key, value and headers; return how many.

    ``app`` is a started App, or a broker URL / Kafka bootstrap address (``host:port``), for
    which a short-lived App is started. Records are read up to the DLQ's end at the time of the
    call; the DLQ itself is left as it is (it is a log).
    """
    if isinstance(app, str):
        async with App(app if "://" in app else f"kafka://{app}") as owned:
            return await redrive(owned, dlq, where=where)
    count = 0
    for msg in await app.transport.read_topic(dlq):
        if where is not None and not where(msg):
            continue
        original = msg.header(ORIGINAL_TOPIC)
        if original is None:
            continue  # not a shoal DLQ record; nothing says where it belongs
        headers = [h for h in msg.headers if not h[0].startswith(PREFIX)]
        await app.transport.send(original.decode(), msg.value, msg.key, headers)
        count += 1
    return count
