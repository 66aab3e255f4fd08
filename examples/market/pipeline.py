"""The whole pipeline on one broker URL: the feed, the bar and quote services, the latency
monitor; optionally the bar service crashes once mid-stream and a new instance takes over.

    run = await run_pipeline("embedded:///tmp/m", FeedSettings(rate_per_s=2_000, seconds=3))

It waits for outcomes (each service has handled every record of its topics), not for time;
``WAIT_S_MAX`` only stops a run that hangs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from examples.market.bars import BAR_WINDOWS
from examples.market.feed import Event, FeedSettings, generate, replay_csv
from examples.market.formats import Payloads, payloads
from examples.market.latency import LatencyMonitor
from examples.market.services import Topics, bar_service, now_ms, quote_service
from shoal import App, Message
from shoal.app.streams.processor import Processor
from shoal.app.transport import Transport, wait_all

WAIT_S_MAX = 120.0
"""A hang guard, not a timing expectation."""
SEND_IN_FLIGHT_MAX = 50_000
"""Records the feed has sent and the broker not yet acknowledged, at most (half of
librdkafka's default queue.buffering.max.messages)."""
SEND_YIELD_EVERY = 100
"""Events the feed sends in a row, at most, before it lets the event loop run."""
POLL_S = 0.05


class PipelineTimeout(Exception):
    pass


@dataclass
class MarketRun:
    events: list[Event]
    bars: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    late_seqs: set[int]
    latency: LatencyMonitor
    crashes: int = 0
    produced: dict[str, int] = field(default_factory=dict)
    feed_s: float = 0.0
    """From the first send of the feed to the last acknowledgement."""
    topics: dict[str, list[Message]] = field(default_factory=dict)
    """The trades topic, the bar changelogs and the latest-quotes topic as they ended."""
    trades: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """The trades topic decoded: (partition, trade) in offset order per partition."""


async def send_feed(
    transport: Transport,
    topics: Topics,
    feed: list[tuple[float, Event]],
    monitor: LatencyMonitor,
    pay: Payloads,
    realtime: bool,
    *,
    stamped_at_start: bool = False,
) -> tuple[float, int]:
    """Send the feed; return how long it took (first send to last acknowledgement) and the
    wall-clock ms of the first send.

    ``realtime``: each event is sent at its arrival time (ms after the first send), the
    events already due together, then a sleep until the next one is due. The feed never waits
    for acknowledgements except to keep at most ``SEND_IN_FLIGHT_MAX`` in flight (then for the
    oldest): waiting for a whole chunk of acks made every event due meanwhile late, and that
    wait counted in its latency from the exchange timestamp.

    ``stamped_at_start``: the events' exchange timestamps count from 0, and are stamped from
    the wall clock (CLOCK_REALTIME, in ms) of the first send: what a feed process does, whose
    exchange clock must not include making the feed (seconds for millions of events)."""
    started = time.monotonic()
    started_ms = int(time.time() * 1_000)
    shift_ms = started_ms if stamped_at_start else 0
    pending: collections.deque[asyncio.Future[None]] = collections.deque()
    # A transport that can produce at once (Kafka) saves a coroutine and a task per event.
    send_nowait: Callable[..., asyncio.Future[None]] | None = getattr(
        transport, "send_nowait", None
    )

    async def send(topic: str, value: bytes, event: Event) -> None:
        await transport.send(topic, value, event.symbol.encode(), [])
        monitor.record(f"{event.kind} -> broker ack", event.ts_ms + shift_ms, now_ms())

    def acked(event: Event) -> Callable[[asyncio.Future[None]], None]:
        stage = f"{event.kind} -> broker ack"
        ts_ms = event.ts_ms + shift_ms

        def record(done: asyncio.Future[None]) -> None:
            if not done.cancelled() and done.exception() is None:
                monitor.record(stage, ts_ms, now_ms())

        return record

    # Events sent since the loop last ran: a feed behind its schedule never sleeps, and
    # without a yield the loop would run no delivery report (each ack's latency, the services
    # of a pipeline in the same loop) until the feed ends.
    behind = 0
    for arrival_ms, event in feed:
        if realtime:
            due = started + arrival_ms / 1_000
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
                behind = 0
        behind += 1
        if behind >= SEND_YIELD_EVERY:
            await asyncio.sleep(0)
            behind = 0
        topic = topics.trades if event.kind == "trade" else topics.quotes
        doc = event.to_json()
        doc["ts"] += shift_ms
        if realtime:  # how late the feed itself is: every later stage counts it too
            monitor.record("event -> sent", doc["ts"], now_ms())
        value = await pay.encode(topic, doc)
        if send_nowait is not None:
            sent = send_nowait(topic, value, event.symbol.encode(), [])
            sent.add_done_callback(acked(event))
            pending.append(sent)
        else:
            pending.append(asyncio.ensure_future(send(topic, value, event)))
        while len(pending) > SEND_IN_FLIGHT_MAX:
            await pending.popleft()
    await wait_all(list(pending))
    return time.monotonic() - started, started_ms


def _shifted(feed: list[tuple[float, Event]], by_ms: int) -> list[tuple[float, Event]]:
    """The feed with every exchange timestamp ``by_ms`` later."""
    if by_ms == 0:
        return feed
    return [(arrival, replace(e, ts_ms=e.ts_ms + by_ms)) for arrival, e in feed]


async def _wait_for(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S_MAX
    while not done():
        if time.monotonic() > deadline:
            raise PipelineTimeout(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_S)


class _Service:
    """A processor running as a task, which can be crashed (cancelled mid-fetch: what it had
    not written or committed is lost) and started anew."""

    def __init__(self, make: Callable[[], Processor]) -> None:
        self._make = make
        self.stop = asyncio.Event()
        self.proc = make()
        self.task = asyncio.create_task(self.proc.run(self.stop))
        self.done_before: list[Processor] = []

    async def crash_and_restart(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.done_before.append(self.proc)
        self.proc = self._make()
        self.task = asyncio.create_task(self.proc.run(self.stop))

    def handled(self, topic: str) -> int:
        """Records of ``topic`` handled and committed, by this instance or a crashed one.

        A processor's positions are the offsets it committed, so the crashed instances' count
        too: a partition the old instance had finished is never fetched by the new one (it
        starts at the committed offset), and would otherwise never be counted."""
        if self.task.done():
            self.task.result()  # a processor that died: raise its error here
        committed: dict[int, int] = {}
        for proc in [*self.done_before, self.proc]:
            for (t, partition), offset in proc.positions.items():
                if t == topic:
                    committed[partition] = max(offset, committed.get(partition, 0))
        return sum(committed.values())

    async def finish(self) -> None:
        self.stop.set()
        await self.task


async def run_pipeline(
    broker: str,
    settings: FeedSettings,
    *,
    namespace: str = "",
    realtime: bool = False,
    csv_path: Path | None = None,
    crash_bars_after: int | None = None,
    exactly_once: frozenset[str] = frozenset(),
    on_started: Callable[[Transport], Awaitable[None]] | None = None,
    fmt: str = "avro",
    registry_url: str | None = None,
    monitor: LatencyMonitor | None = None,
) -> MarketRun:
    """Run the feed through the services; ``crash_bars_after``: crash the bar service once
    it has handled that many trades, and start a new instance (it restores from the
    changelogs). ``exactly_once``: the services ("bars", "quotes") that commit each fetch in
    a Kafka transaction. ``fmt``: "avro" (schemas in the registry at ``registry_url``; by
    default the embedded broker's) or "json". ``monitor``: where the stages' latencies go
    (one the caller watches while the run goes on; a new one by default)."""
    topics = Topics(namespace)
    monitor = monitor if monitor is not None else LatencyMonitor()
    app = App(broker, name="market")
    await app.start()
    try:
        pay = payloads(fmt, topics, registry_url or app.embedded_http_url)
        transport = app.transport
        monitor.setting_up = "creating the topics"
        await transport.ensure_topics([topics.trades, topics.quotes])
        if on_started is not None:
            await on_started(transport)
        bars = _Service(
            lambda: bar_service(
                transport, topics, monitor, pay, exactly_once="bars" in exactly_once
            )[0]
        )
        quotes = _Service(
            lambda: quote_service(
                transport, topics, monitor, pay, exactly_once="quotes" in exactly_once
            )[0]
        )
        # Kafka's group.initial.rebalance.delay.ms (3 s by default) holds each group's first
        # assignment: the live view says what the wait is, not zeros.
        monitor.setting_up = "the services joining their groups (group.initial.rebalance.delay.ms)"
        for service in (bars, quotes):
            await _wait_for(service.proc.assigned.is_set, "the services to join their groups")
        monitor.setting_up = "making the feed"
        # Exchange time starts now, once the broker and the services are up.
        start_ms = int(time.time() * 1_000)
        if csv_path is not None:
            feed = [(0.0, e) for e in replay_csv(csv_path, start_ms if realtime else None)]
        else:
            feed = generate(settings, start_ms)
        if realtime or csv_path is None:
            # ... once the feed is made, too: its making (seconds for a large feed) would
            # otherwise count in every event's latency from its exchange timestamp.
            feed = _shifted(feed, int(time.time() * 1_000) - start_ms)
        events = [e for _, e in feed]
        monitor.setting_up = None
        sending = asyncio.create_task(send_feed(transport, topics, feed, monitor, pay, realtime))
        trades = sum(1 for e in events if e.kind == "trade")
        crashes = 0
        if crash_bars_after is not None:
            await _wait_for(
                lambda: bars.handled(topics.trades) >= min(crash_bars_after, trades),
                "the bar service's progress before its crash",
            )
            await bars.crash_and_restart()
            crashes = 1
        feed_s, _ = await sending
        await _wait_for(lambda: bars.handled(topics.trades) >= trades, "the bar service")
        await _wait_for(
            lambda: quotes.handled(topics.quotes) + quotes.handled(topics.trades) >= len(events),
            "the quote service",
        )
        await bars.finish()
        await quotes.finish()
        bar_records = await _read(transport, pay, topics.bars)
        alerts = await _read(transport, pay, topics.alerts)
        late = {t["seq"] for t in await _read(transport, pay, topics.late_trades)}
        kept = [topics.trades, topics.latest_quotes]
        kept += [topics.bar_changelog(series) for series in BAR_WINDOWS]
        contents = {name: await transport.read_topic(name) for name in kept}
        decoded = [
            (m.partition, await pay.decode(topics.trades, m.value)) for m in contents[topics.trades]
        ]
    finally:
        await app.stop()
    return MarketRun(
        events=events,
        bars=bar_records,
        alerts=alerts,
        late_seqs=late,
        latency=monitor,
        crashes=crashes,
        produced={"trades": trades, "quotes": len(events) - trades},
        feed_s=feed_s,
        topics=contents,
        trades=decoded,
    )


async def _read(transport: Transport, pay: Payloads, topic: str) -> list[dict[str, Any]]:
    return [await pay.decode(topic, m.value) for m in await transport.read_topic(topic)]


async def run_replay(
    broker: str,
    start_at_ms: int,
    *,
    namespace: str = "",
    fmt: str = "avro",
    registry_url: str | None = None,
) -> list[dict[str, Any]]:
    """Recompute the bars from the trades already in ``namespace``'s trades topic, starting in
    each partition at its first record timestamped at or after ``start_at_ms`` (the records'
    Kafka timestamps: when the feed sent them). The bar service runs in a group of its own
    with new changelogs and writes to its own bars topic (``Topics.replay``); returns the bars
    it published once it reached the end of the trades as they were when it started."""
    topics = Topics(namespace, replay=f"replay-{start_at_ms}")
    app = App(broker, name="market-replay")
    await app.start()
    try:
        pay = payloads(fmt, topics, registry_url or app.embedded_http_url)
        transport = app.transport
        ends: dict[int, int] = {}
        """Per partition with records from the time on: the offset after its last record."""
        for msg in await transport.read_topic(topics.trades):
            if msg.partition in ends or msg.timestamp_ms >= start_at_ms:
                ends[msg.partition] = msg.offset + 1
        bars = _Service(
            lambda: bar_service(transport, topics, LatencyMonitor(), pay, start_at_ms=start_at_ms)[
                0
            ]
        )
        positions = bars.proc.positions

        def caught_up() -> bool:
            bars.handled(topics.trades)  # raises the service's error if it died
            return all(positions.get((topics.trades, p), 0) >= end for p, end in ends.items())

        await _wait_for(caught_up, "the replay to reach the end of the trades")
        await bars.finish()
        return await _read(transport, pay, topics.bars)
    finally:
        await app.stop()
