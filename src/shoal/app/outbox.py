"""Where the framework's records go out: a typed seam between the delivery pipeline and the App.

The pipeline (:mod:`shoal.app.delivery`) sends three kinds of record: a handler's output (a value
to encode), and a consumed record moved on unchanged, to a retry topic or to a dead-letter
topic. It sends them through an :class:`Outbox`, not through the App: the App owns a
:class:`TransportOutbox` and its own ``publish`` goes through the same one, so every published
record gets its message id, span and metric in one place.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Protocol

from shoal.app.message import MESSAGE_ID_HEADER, Headers
from shoal.app.observability import tracing
from shoal.app.observability.metrics import Instruments
from shoal.app.serdes.codec import Codec
from shoal.app.serdes.payload import encode
from shoal.app.transport import DelayedSend, PipelinedSend, Transport, send_when_room


class Outbox(Protocol):
    async def publish(
        self,
        topic: str,
        value: object,
        *,
        key: bytes | None,
        headers: Headers,
        codec: Codec | None,
    ) -> str:
        """Encode ``value`` (JSON, or with ``codec``) and send it; return its message id (the
        one in ``headers`` if there is one, else a new one, added to ``headers``)."""
        ...

    async def forward(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        *,
        delay_ms: int | None = None,
    ) -> None:
        """Send a consumed record's payload on as it is (to a retry topic or a DLQ). With
        ``delay_ms`` (a retry), a transport that can hold it back until due does
        (:class:`DelayedSend`); elsewhere the retry topic's consumer waits for the due time
        the headers carry."""
        ...


class TransportOutbox:
    """The :class:`Outbox` of an App: one transport, the App's metrics and tracing."""

    def __init__(self, transport: Transport, system: str, metrics: Instruments) -> None:
        self.transport = transport
        self._system = system
        self._metrics = metrics
        # An optional capability, looked up once: the transport either has it or not.
        self._delayed: DelayedSend | None = (
            transport if isinstance(transport, DelayedSend) else None
        )
        self._pipelined: PipelinedSend | None = (
            transport if isinstance(transport, PipelinedSend) else None
        )

    @property
    def pipelines(self) -> bool:
        """Whether :meth:`publish_pipelined` returns before the record is delivered."""
        return self._pipelined is not None

    async def publish(
        self,
        topic: str,
        value: object,
        *,
        key: bytes | None,
        headers: Headers,
        codec: Codec | None,
    ) -> str:
        message_id, payload = await _identified_payload(topic, value, headers, codec)
        with tracing.publish_span(topic, self._system, headers=headers):
            await self.transport.send(topic, payload, key, headers)
        self._metrics.published(topic)
        return message_id

    async def publish_pipelined(
        self,
        topic: str,
        value: object,
        *,
        key: bytes | None,
        headers: Headers,
        codec: Codec | None,
    ) -> asyncio.Future[None]:
        """:meth:`publish` without waiting for the delivery: the record is queued and the
        delivery's future returned (TransportError at once when it cannot be queued). The
        metric counts it once delivered. Only with :attr:`pipelines`."""
        sender = self._pipelined
        if sender is None:
            raise TypeError("the transport cannot send without waiting (no send_nowait)")
        _, payload = await _identified_payload(topic, value, headers, codec)
        with tracing.publish_span(topic, self._system, headers=headers):
            delivered = await send_when_room(sender, topic, payload, key, headers)
        published = self._metrics.published

        def count(fut: asyncio.Future[None]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                published(topic)

        delivered.add_done_callback(count)
        return delivered

    async def forward(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        *,
        delay_ms: int | None = None,
    ) -> None:
        if delay_ms is not None and self._delayed is not None:
            await self._delayed.send_delayed(topic, value, key, headers, delay_ms)
        else:
            await self.transport.send(topic, value, key, headers)


async def _identified_payload(
    topic: str, value: object, headers: Headers, codec: Codec | None
) -> tuple[str, bytes]:
    """The record's message id (the one in ``headers``, else a new one added to them) and
    ``value`` encoded (JSON, or with ``codec``): what every publish does before it sends."""
    message_id = next((v.decode() for k, v in headers if k == MESSAGE_ID_HEADER), None)
    if message_id is None:
        message_id = uuid.uuid4().hex
        headers.append((MESSAGE_ID_HEADER, message_id.encode()))
    payload = encode(value) if codec is None else await codec.encode(topic, value)
    return message_id, payload
