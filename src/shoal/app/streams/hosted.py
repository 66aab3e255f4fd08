"""Stream processors inside the App's lifecycle (``@app.processor``): declared before start,
built on the app's transport when it starts, run as one of its tasks, stopped with it.

    @app.processor("trades", group="bars", stores=[bars], outputs=["bars"])
    async def on_trade(msg: Message, out: Outputs) -> None: ...

A handler that raises goes through the app's retry policy and then the DLQ
(:mod:`shoal.app.streams.resilient`); the processor goes on. A transport failure ends the
processor's consumer: its state is dropped and restored from the changelogs by the next one,
which starts after a pause, as a subscriber's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from shoal.app.delivery import Runtime
from shoal.app.resilience.dlq import dlq_topic
from shoal.app.resilience.retry import Retry
from shoal.app.streams.processor import FETCH_RECORDS_MAX, Handler, Processor
from shoal.app.streams.resilient import Resilience, StoppedRetrying, resilient
from shoal.app.streams.table import Store
from shoal.app.transport import TransportConsumer

log = logging.getLogger("shoal.app.streams")

RESTART_DELAY_S = 1.0
"""Pause before a processor whose consumer failed starts a new one (real time)."""


@dataclass(frozen=True, slots=True)
class ProcessorSpec:
    """A processor as declared: what the App builds at start (and AsyncAPI could document)."""

    topics: tuple[str, ...]
    group: str
    handler: Handler
    stores: tuple[Store, ...] = ()
    outputs: tuple[str, ...] = ()
    retry: Retry = field(default_factory=Retry)
    dlq: bool | str = True
    exactly_once: bool = False
    fetch_records_max: int = FETCH_RECORDS_MAX
    start_at_ms: int | None = None

    @property
    def name(self) -> str:
        return getattr(self.handler, "__qualname__", repr(self.handler))

    def dlq_for(self, topic: str) -> str | None:
        if self.dlq is False:
            return None
        return self.dlq if isinstance(self.dlq, str) else dlq_topic(topic)

    def all_outputs(self) -> list[str]:
        """The declared outputs and the DLQ topics (created at start)."""
        dlqs = [d for d in (self.dlq_for(t) for t in self.topics) if d is not None]
        return list(dict.fromkeys([*self.outputs, *dlqs]))


class ProcessorRunner:
    def __init__(self, rt: Runtime, spec: ProcessorSpec) -> None:
        """Builds the processor now, so a declaration the transport cannot serve
        (``exactly_once`` without transactions) fails the App's start."""
        self.rt = rt
        self.spec = spec
        handle = resilient(
            spec.handler,
            Resilience(
                name=spec.name,
                retry=spec.retry,
                dlq_for=spec.dlq_for,
                metrics=rt.metrics,
                clock=rt.clock,
                sleep=rt.sleep,
                rng=rt.rng,
                stopping=rt.stopping,
            ),
        )
        self.processor = Processor(
            rt.transport,
            group=spec.group,
            topics=spec.topics,
            handle=handle,
            stores=spec.stores,
            outputs=spec.all_outputs(),
            exactly_once=spec.exactly_once,
            start_at_ms=spec.start_at_ms,
            fetch_records_max=spec.fetch_records_max,
        )

    @property
    def subscribed(self) -> asyncio.Event:
        return self.processor.subscribed

    @property
    def consumers(self) -> list[tuple[str, TransportConsumer]]:
        """(group, consumer) while the processor has one: for the lag metrics."""
        consumer = self.processor.consumer
        return [] if consumer is None else [(self.spec.group, consumer)]

    def ready(self) -> bool:
        """The processor owns partitions, restored from their changelogs."""
        return bool(self.processor.owned)

    async def run(self) -> None:
        stopping = self.rt.stopping
        while not stopping.is_set():
            try:
                await self.processor.run(stopping)
            except StoppedRetrying:
                self.processor.forget_all()  # the unfinished fetch is read again next time
            except Exception:
                # Nothing of the failed fetch was committed: its records are read again, and
                # the state comes back from the changelogs (exact by the stores' replay rule).
                log.exception("processor %s failed; restarting", self.spec.name)
                self.processor.forget_all()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), RESTART_DELAY_S)
