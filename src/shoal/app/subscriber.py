"""What the App knows about each subscriber and publisher: the declarations, checked once.

The AsyncAPI generator and the CLI read these too, so they hold declared facts (types, topic
names, policies), not runtime state.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shoal.app.message import Message
from shoal.app.resilience.breaker import Breaker
from shoal.app.resilience.dlq import dlq_topic
from shoal.app.resilience.retry import Retry, retry_topic
from shoal.app.serdes.codec import Codec
from shoal.app.serdes.payload import Decoder, decoder_for

KeyFunction = Callable[[Message], str | bytes | None]
"""Idempotency key of a record, when the shoal message id is not the right one."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    topics: tuple[str, ...]
    group: str
    handler: Callable[..., Awaitable[object]]
    decoder: Decoder
    payload_type: Any
    wants_message: bool
    retry: Retry
    dlq: bool | str
    concurrency: int
    output: str | None = None
    output_type: Any = None
    breaker: Breaker | None = None
    idempotent: bool = False
    idempotency_key: KeyFunction | None = None
    codec: Codec | None = None
    """Decodes the records (instead of the JSON serde chosen by ``payload_type``)."""
    output_codec: Codec | None = None
    exactly_once: bool = False
    """Outputs and consumed offsets commit in one transaction (Kafka transports only)."""
    queue: bool = False
    """Consumed as a queue (a Kafka share group): records acknowledged one by one, a failed one
    released for redelivery or rejected, no partition limit on consumers (issue 16)."""

    @property
    def name(self) -> str:
        return getattr(self.handler, "__qualname__", repr(self.handler))

    @property
    def description(self) -> str | None:
        return inspect.getdoc(self.handler)

    def dlq_for(self, topic: str) -> str | None:
        """Where a record of ``topic`` goes when it failed for good (None: logged, skipped)."""
        if self.dlq is False:
            return None
        return self.dlq if isinstance(self.dlq, str) else dlq_topic(topic)

    @property
    def dlq_topic(self) -> str | None:
        """The DLQ of the first topic (all of them share it when a name was given)."""
        return self.dlq_for(self.topics[0])

    def retry_topics(self) -> list[tuple[str, int, int]]:
        """(retry topic, its number, its delay in ms) for every subscribed topic."""
        return [
            (retry_topic(topic, n), n, delay)
            for topic in self.topics
            for n, delay in enumerate(self.retry.topics, start=1)
        ]

    def all_topics(self) -> list[str]:
        """Every topic this subscriber reads, retries into, dead-letters to or outputs to."""
        out = list(self.topics) + [t for t, _, _ in self.retry_topics()]
        out += [d for d in (self.dlq_for(t) for t in self.topics) if d is not None]
        if self.output is not None:
            out.append(self.output)
        return list(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class Publisher:
    """A declared output of the app (``app.publisher``): documented, and a typed way to send."""

    topic: str
    payload_type: Any
    description: str | None
    publish_fn: Callable[..., Awaitable[str]]
    codec: Codec | None = None

    async def publish(
        self,
        value: object,
        *,
        key: bytes | str | None = None,
        headers: dict[str, str | bytes] | None = None,
    ) -> str:
        """Send ``value`` to this publisher's topic; return its shoal message id."""
        return await self.publish_fn(self.topic, value, key=key, headers=headers, codec=self.codec)


def inspect_handler(
    handler: Callable[..., Awaitable[object]],
) -> tuple[Decoder, Any, bool, Any]:
    """(decoder, payload type, whether it takes a Message second, return type) of a handler."""
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"{handler!r} must be an async function")
    params = list(inspect.signature(handler).parameters.values())
    if not 1 <= len(params) <= 2:
        raise TypeError("a handler takes (value) or (value, message)")
    hints = typing.get_type_hints(handler)
    payload = hints.get(params[0].name, Any)
    return decoder_for(payload), payload, len(params) == 2, hints.get("return", Any)
