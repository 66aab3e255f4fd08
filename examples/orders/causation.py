"""Publishing an event caused by a consumed message, with an id derived from that message.

shoal.app does this for a handler's return value (its ``output`` topic). A handler with two
possible outcomes on two topics (succeeded / failed) can return only one of them; the other is
published here the same way, so a redelivered input republishes the same message id and an
idempotent consumer downstream still applies it once.
"""

from __future__ import annotations

import uuid

from shoal import App, Message
from shoal.app.message import CAUSATION_ID_HEADER, MESSAGE_ID_HEADER

CAUSED_ID_NAMESPACE = uuid.UUID("0b6f3c8e-2f4d-4a51-9d0e-7a1c5e2b9f43")


async def publish_caused_by(app: App, topic: str, value: object, cause: Message) -> str:
    """Publish ``value`` to ``topic`` keyed like ``cause``; return the message id."""
    headers: dict[str, str | bytes] = {}
    if cause.message_id is not None:
        derived = uuid.uuid5(CAUSED_ID_NAMESPACE, f"{app.name}/{topic}/{cause.message_id}")
        headers = {MESSAGE_ID_HEADER: derived.hex, CAUSATION_ID_HEADER: cause.message_id}
    return await app.publish(topic, value, key=cause.key, headers=headers)
