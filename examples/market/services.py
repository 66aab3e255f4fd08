"""The services of the pipeline, each a stream processor (:mod:`shoal.app.streams`):

- bars: OHLC + VWAP per symbol on every series of :data:`~examples.market.bars.BAR_WINDOWS`,
  on event time; a bar is published once its window closed; late trades go to a side topic.
- quotes: the latest quote per symbol in a table whose changelog is a compacted topic (what a
  dashboard reads on start), spread alerts, and a stream-table join of each trade with its
  symbol's latest quote that flags prints far off the quote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from examples.market.bars import ALLOWED_LATENESS_MS, BAR_WINDOWS, OHLC, Bar, Trade, vwap
from examples.market.latency import LatencyMonitor
from shoal.app.message import MESSAGE_ID_HEADER, Message
from shoal.app.streams.processor import Outputs, Processor
from shoal.app.streams.table import Table, WindowedTable
from shoal.app.transport import Transport

if TYPE_CHECKING:
    from examples.market.formats import Payloads

SPREAD_ALERT_BPS = 50
"""A quote whose spread is wider than this (basis points of the mid) raises an alert."""
OFF_QUOTE_ALERT_BPS = 100
"""A trade this far from its symbol's latest mid (basis points) raises an alert."""


@dataclass(frozen=True)
class Topics:
    namespace: str = ""
    replay: str = ""
    """Set for a replay (:func:`~examples.market.pipeline.run_replay`): the bar service's
    outputs, changelogs and group get this suffix, so the replay has its own state."""

    def _name(self, name: str) -> str:
        return f"{self.namespace}market.{name}"

    def _bar_output(self, name: str) -> str:
        return self._name(f"{name}.{self.replay}" if self.replay else name)

    @property
    def trades(self) -> str:
        return self._name("trades")

    @property
    def quotes(self) -> str:
        return self._name("quotes")

    @property
    def bars(self) -> str:
        return self._bar_output("bars")

    @property
    def late_trades(self) -> str:
        return self._bar_output("trades.late")

    @property
    def latest_quotes(self) -> str:
        """The compacted topic that holds the latest quote per symbol."""
        return self._name("quotes.latest")

    @property
    def alerts(self) -> str:
        return self._name("alerts")

    def bar_changelog(self, series: str) -> str:
        return self._bar_output(f"bars-{series}-changelog")

    @property
    def bar_group(self) -> str:
        return self._bar_output("bars")


def now_ms() -> float:
    return time.time() * 1_000


def bar_tables(topics: Topics) -> dict[str, WindowedTable[Trade, Bar]]:
    return {
        series: WindowedTable(
            f"bars-{series}",
            source=topics.trades,
            windows=windows,
            aggregation=OHLC,
            allowed_lateness_ms=ALLOWED_LATENESS_MS,
            changelog=topics.bar_changelog(series),
        )
        for series, windows in BAR_WINDOWS.items()
    }


def bar_service(
    transport: Transport,
    topics: Topics,
    monitor: LatencyMonitor,
    payloads: Payloads,
    *,
    exactly_once: bool = False,
    start_at_ms: int | None = None,
) -> tuple[Processor, dict[str, WindowedTable[Trade, Bar]]]:
    tables = bar_tables(topics)

    async def handle(msg: Message, out: Outputs) -> None:
        trade = await payloads.decode(msg.topic, msg.value)
        monitor.record("trade -> bars", trade["ts"], now_ms())
        late = False
        for series, table in tables.items():
            step = table.add(
                msg, trade["symbol"], trade["ts"], (trade["seq"], trade["price"], trade["size"])
            )
            late = late or step.late
            for result in step.closed:
                window = result.window
                bar: dict[str, Any] = {
                    "series": series,
                    "symbol": result.key,
                    "start": window.start_ms,
                    "end": window.end_ms,
                    **result.value,
                    "vwap": vwap(result.value),
                }
                # The same id on a replayed bar: a consumer can drop the repeat.
                bar_id = f"{series}/{result.key}/{window.start_ms}".encode()
                value = await payloads.encode(topics.bars, bar)
                out.send(topics.bars, value, result.key, [(MESSAGE_ID_HEADER, bar_id)])
                monitor.record(f"bar {series} close", window.end_ms, now_ms())
        if late:  # the record as it came (with Avro: framed with the trade schema's id)
            out.send(topics.late_trades, msg.value, msg.key)

    proc = Processor(
        transport,
        group=topics.bar_group,
        topics=[topics.trades],
        handle=handle,
        stores=list(tables.values()),
        outputs=[topics.bars, topics.late_trades],
        exactly_once=exactly_once,
        start_at_ms=start_at_ms,
    )
    return proc, tables


def quote_table(topics: Topics) -> Table:
    return Table("latest-quotes", source=topics.quotes, changelog=topics.latest_quotes)


def quote_service(
    transport: Transport,
    topics: Topics,
    monitor: LatencyMonitor,
    payloads: Payloads,
    *,
    exactly_once: bool = False,
) -> tuple[Processor, Table]:
    quotes = quote_table(topics)
    quotes_topic, alerts_topic = topics.quotes, topics.alerts  # names built once, not per record

    async def handle(msg: Message, out: Outputs) -> None:
        event = await payloads.decode(msg.topic, msg.value)
        symbol = event["symbol"]
        if msg.topic == quotes_topic:
            monitor.record("quote -> table", event["ts"], time.time() * 1_000)
            latest = quotes.get(symbol)
            # Latest by exchange time: a quote that arrives out of order does not win.
            if latest is None or (event["ts"], event["seq"]) > (latest["ts"], latest["seq"]):
                quotes.put(msg, symbol, {k: event[k] for k in ("bid", "ask", "ts", "seq")})
            mid = (event["bid"] + event["ask"]) / 2
            spread_bps = (event["ask"] - event["bid"]) / mid * 10_000
            if spread_bps > SPREAD_ALERT_BPS:
                alert = {"alert": "wide spread", "bps": round(spread_bps, 1), **event}
                out.send(alerts_topic, await payloads.encode(alerts_topic, alert), symbol)
            return
        # A trade: joined with its symbol's latest quote (same key, co-partitioned topics).
        monitor.record("trade -> join", event["ts"], time.time() * 1_000)
        quote = quotes.get(symbol)
        if quote is None:
            return
        mid = (quote["bid"] + quote["ask"]) / 2
        off_bps = abs(event["price"] - mid) / mid * 10_000
        if off_bps > OFF_QUOTE_ALERT_BPS:
            alert = {"alert": "trade off quote", "bps": round(off_bps, 1), **event, "quote": quote}
            out.send(alerts_topic, await payloads.encode(alerts_topic, alert), symbol)

    proc = Processor(
        transport,
        group=f"{topics.namespace}market.quotes",
        topics=[topics.quotes, topics.trades],
        handle=handle,
        stores=[quotes],
        outputs=[topics.alerts],
        exactly_once=exactly_once,
    )
    return proc, quotes
