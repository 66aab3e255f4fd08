"""The market feed's sender (examples/market/pipeline.send_feed), in process on the memory
transport: what it does when it is behind its schedule, and how it stamps exchange time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from examples.market.feed import FeedSettings, generate
from examples.market.formats import JsonPayloads
from examples.market.latency import LatencyMonitor
from examples.market.pipeline import SEND_YIELD_EVERY, send_feed
from examples.market.services import Topics

from shoal.app.transports.memory import MemoryTransport

FEED = FeedSettings(rate_per_s=2_000, seconds=0.5, symbols=2, out_of_order_ms_max=0, late_share=0)


class CountingPayloads(JsonPayloads):
    def __init__(self) -> None:
        super().__init__()
        self.encoded = 0

    async def encode(self, topic: str, value: dict[str, Any]) -> bytes:
        self.encoded += 1
        return await super().encode(topic, value)


class FirstAck(LatencyMonitor):
    """Notes how many events the feed had encoded when the first acknowledgement was seen."""

    def __init__(self, payloads: CountingPayloads) -> None:
        super().__init__()
        self._payloads = payloads
        self.encoded_at_first_ack: int | None = None

    def record(self, stage: str, exchange_ts_ms: int, now_ms: float) -> None:
        if stage.endswith("broker ack") and self.encoded_at_first_ack is None:
            self.encoded_at_first_ack = self._payloads.encoded
        super().record(stage, exchange_ts_ms, now_ms)


def test_a_feed_behind_its_schedule_still_lets_acknowledgements_in() -> None:
    # Every event due at once (arrival 0): the feed is as far behind as it can be and never
    # sleeps. It used to send them all before the loop ran a single delivery report, so the
    # acks' latency counted the whole rest of the feed (seconds at 50,000/s).
    events = [(0.0, e) for _, e in generate(FEED, 0)]
    assert len(events) > 4 * SEND_YIELD_EVERY
    payloads = CountingPayloads()
    monitor = FirstAck(payloads)

    async def run() -> None:
        transport = MemoryTransport()
        await transport.start()
        try:
            await send_feed(transport, Topics("t."), events, monitor, payloads, realtime=True)
        finally:
            await transport.stop()

    asyncio.run(run())
    assert monitor.encoded_at_first_ack is not None
    assert monitor.encoded_at_first_ack <= SEND_YIELD_EVERY + 1
    acks = sum(s.seen for n, s in monitor.stages.items() if n.endswith("broker ack"))
    assert acks == len(events)


def test_exchange_time_stamped_at_the_first_send() -> None:
    events = generate(FEED, 0)  # exchange times from 0
    monitor = LatencyMonitor()

    async def run() -> int:
        transport = MemoryTransport()
        await transport.start()
        try:
            before_ms = int(time.time() * 1_000)
            _, started_ms = await send_feed(
                transport,
                Topics("t."),
                events,
                monitor,
                JsonPayloads(),
                realtime=True,
                stamped_at_start=True,
            )
            assert before_ms <= started_ms
            sent = await transport.read_topic("t.market.quotes")
            first_ts: int = min(JsonPayloads()._decoder.decode(m.value)["ts"] for m in sent)
            return first_ts - started_ms
        finally:
            await transport.stop()

    offset_ms = asyncio.run(run())
    first_quote = min(e.ts_ms for _, e in events if e.kind == "quote")
    assert offset_ms == first_quote
    # Latency is measured from those stamps: never negative (nothing is sent before it is due).
    assert min(monitor.stages["event -> sent"].samples_ms) >= 0
