"""A processor's handler with the App's resilience around it: a record whose handler raises is
tried again in place (the subscriber's :class:`~shoal.app.resilience.retry.Retry` policy, with
its backoff), then dead-lettered, and the processor goes on with the next record.

Retrying in place is safe for the state: a store skips a record whose effect it already holds
(its replay rule, :mod:`shoal.app.streams.table`), so a retry after an attempt that changed a
store before raising does not count the record twice. What a failed attempt sent
(``out.send``) stays sent, as every output of a processor is at-least-once (exactly once with
``exactly_once=True``: the fetch's transaction holds the attempts and the DLQ record alike).
Retry *topics* do not fit a processor: its state follows each partition in offset order, so a
record cannot be handled again later, after its successors.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shoal.app.message import Message
from shoal.app.observability.metrics import Instruments
from shoal.app.resilience.dlq import Failure, dlq_headers
from shoal.app.resilience.retry import Retry
from shoal.app.streams.processor import Handler, Outputs
from shoal.clock import Clock

log = logging.getLogger("shoal.app.streams")


class StoppedRetrying(Exception):
    """The app stops while a record waits for its next attempt: the fetch is not committed,
    and the record is handled again by the partition's next owner (or this app restarted)."""


@dataclass(frozen=True, slots=True)
class Resilience:
    """What the App lends a processor's handler: its policy, metrics and timing."""

    name: str
    retry: Retry
    dlq_for: Callable[[str], str | None]
    """The DLQ topic of a source topic (None: a failed record is logged and skipped)."""
    metrics: Instruments
    clock: Clock
    sleep: Callable[[float], Awaitable[None]]
    rng: random.Random
    stopping: asyncio.Event


def resilient(handle: Handler, res: Resilience) -> Handler:
    """``handle`` retried, dead-lettered and measured as the App does for its subscribers."""
    if res.retry.topics:
        raise ValueError(
            f"processor {res.name}: retry topics do not fit a processor (its state follows "
            "each partition in offset order); use in-place retries: Retry(max_attempts=...)"
        )
    processed = res.metrics.processed_by(res.name)
    clock = time.perf_counter

    async def handled(msg: Message, out: Outputs) -> None:
        attempt, first_failure_ms = 1, None
        while True:
            started = clock()
            try:
                await handle(msg, out)
            except Exception as exc:
                res.metrics.failed(res.name, msg.topic, exc)
                now = res.clock.now_ms()
                first_failure_ms = first_failure_ms if first_failure_ms is not None else now
                if not res.retry.should_retry(exc, attempt):
                    _give_up(msg, out, res, Failure(exc, attempt, first_failure_ms, now))
                    return
                res.metrics.retried(res.name, msg.topic)
                await res.sleep(res.retry.delay_ms(attempt, res.rng) / 1000.0)
                if res.stopping.is_set():
                    raise StoppedRetrying(f"{res.name}: stopped while retrying") from exc
                attempt += 1
                continue
            processed(msg.topic, clock() - started)
            return

    return handled


def _give_up(msg: Message, out: Outputs, res: Resilience, failure: Failure) -> None:
    target = res.dlq_for(msg.topic)
    if target is None:
        log.error(
            "%s: %s[%d]@%d failed %d times; skipped (no DLQ)",
            res.name,
            msg.topic,
            msg.partition,
            msg.offset,
            failure.attempts,
            exc_info=failure.exc,
        )
        return
    # Sent with the fetch's outputs: durable before the fetch's offsets commit.
    out.send(target, msg.value, msg.key, dlq_headers(msg, failure))
    res.metrics.dead_lettered(res.name, msg.topic)
    log.warning(
        "%s: %s[%d]@%d dead-lettered to %s after %d attempts: %r",
        res.name,
        msg.topic,
        msg.partition,
        msg.offset,
        target,
        failure.attempts,
        failure.exc,
    )
