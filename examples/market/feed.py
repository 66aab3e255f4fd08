"""The exchange feed: trades and quotes for a few symbols, prices from geometric Brownian
motion, at a chosen rate with bursts, some events out of order and some late; or a replay of
a CSV file.

Prices and sizes are integers (price in ticks of 1/10,000 of a currency unit) so that sums
such as price x size are exact whatever order they are added in: the correctness test
compares bars computed in arrival order with a brute-force computation over the same feed.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

TICKS_PER_UNIT = 10_000
SYMBOLS = ("ACME", "BOLT", "CRUX", "DYNA", "EPOX", "FLUX", "GRID", "HALO")
START_PRICES = (101.0, 42.5, 230.0, 12.25, 77.0, 5.5, 310.0, 64.0)
VOLATILITY_PER_YEAR = 0.4
"""Annualised volatility of the price process (a lively stock)."""
SECONDS_PER_YEAR = 252 * 6.5 * 3600
"""Trading seconds in a year: the GBM's clock."""


@dataclass(frozen=True, slots=True)
class Event:
    kind: Literal["trade", "quote"]
    symbol: str
    seq: int
    """Feed-wide sequence number: ties in event time are broken by it."""
    ts_ms: int
    """Exchange timestamp (event time)."""
    price: int = 0
    size: int = 0
    bid: int = 0
    ask: int = 0

    def to_json(self) -> dict[str, Any]:
        if self.kind == "trade":
            return {
                "kind": "trade",
                "symbol": self.symbol,
                "seq": self.seq,
                "ts": self.ts_ms,
                "price": self.price,
                "size": self.size,
            }
        return {
            "kind": "quote",
            "symbol": self.symbol,
            "seq": self.seq,
            "ts": self.ts_ms,
            "bid": self.bid,
            "ask": self.ask,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Event:
        return Event(
            data["kind"],
            data["symbol"],
            data["seq"],
            data["ts"],
            data.get("price", 0),
            data.get("size", 0),
            data.get("bid", 0),
            data.get("ask", 0),
        )


@dataclass(frozen=True, slots=True)
class FeedSettings:
    rate_per_s: int = 1_000
    """Events per second of event time (trades and quotes together)."""
    seconds: float = 5.0
    symbols: int = 4
    seed: int = 1
    quote_share: float = 0.7
    """Most market data is quotes."""
    burst_every_s: float = 2.0
    burst_factor: int = 5
    """Every ``burst_every_s`` the rate jumps this many times for a tenth of a second."""
    out_of_order_ms_max: int = 50
    """Events arrive up to this much behind the newest (within the services' lateness)."""
    late_share: float = 0.01
    late_ms: int = 2_500
    """That share of events arrives this much late: past the allowed lateness."""

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.seconds <= 0:
            raise ValueError("rate and seconds must be positive")
        if not 1 <= self.symbols <= len(SYMBOLS):
            raise ValueError(f"symbols must be in 1..{len(SYMBOLS)}")


def generate(settings: FeedSettings, start_ms: int) -> list[tuple[float, Event]]:
    """The feed in arrival order, as (arrival ms after the start, event), event times from
    ``start_ms``: deterministic per seed."""
    rng = random.Random(settings.seed)
    symbols = SYMBOLS[: settings.symbols]
    prices = dict(zip(symbols, START_PRICES, strict=False))
    events: list[tuple[float, Event]] = []  # (arrival time ms, event)
    t_ms = 0.0
    seq = 0
    end_ms = settings.seconds * 1_000
    while t_ms < end_ms:
        in_burst = (t_ms / 1_000) % settings.burst_every_s < 0.1
        rate = settings.rate_per_s * (settings.burst_factor if in_burst else 1)
        t_ms += rng.expovariate(rate) * 1_000
        symbol = rng.choice(symbols)
        prices[symbol] = _gbm_step(prices[symbol], 1_000 / rate, rng)
        ts_ms = start_ms + int(t_ms)
        event = _event(settings, rng, symbol, seq, ts_ms, prices[symbol])
        arrival = t_ms + rng.uniform(0, settings.out_of_order_ms_max)
        if rng.random() < settings.late_share:
            arrival += settings.late_ms
        events.append((arrival, event))
        seq += 1
    events.sort(key=lambda pair: pair[0])
    return events


def _gbm_step(price: float, dt_ms: float, rng: random.Random) -> float:
    """One step of geometric Brownian motion (no drift): log-returns are normal."""
    dt_years = dt_ms / 1_000 / SECONDS_PER_YEAR
    sigma = VOLATILITY_PER_YEAR
    return price * math.exp(-0.5 * sigma**2 * dt_years + sigma * math.sqrt(dt_years) * rng.gauss())


def _event(
    settings: FeedSettings, rng: random.Random, symbol: str, seq: int, ts_ms: int, price: float
) -> Event:
    ticks = max(1, round(price * TICKS_PER_UNIT))
    half_spread = max(1, round(ticks * rng.uniform(0.0001, 0.0008)))
    if rng.random() < settings.quote_share:
        if rng.random() < 0.005:
            half_spread *= 40  # a spread blow-out: the alert service flags it
        return Event("quote", symbol, seq, ts_ms, bid=ticks - half_spread, ask=ticks + half_spread)
    trade_price = ticks + rng.randint(-half_spread, half_spread)
    if rng.random() < 0.002:
        trade_price = round(trade_price * 1.03)  # a print far off the quote: an anomaly
    return Event("trade", symbol, seq, ts_ms, price=trade_price, size=rng.choice((1, 5, 10, 100)))


def replay_csv(path: Path, start_ms: int | None = None) -> Iterator[Event]:
    """Events from a CSV file with the columns ``kind,symbol,ts,price,size,bid,ask`` (prices
    in currency units, ``ts`` in epoch ms), in file order; ``start_ms`` shifts the first
    event's time there (replaying old data as if live)."""
    with path.open(newline="") as f:
        shift: int | None = None
        for seq, row in enumerate(csv.DictReader(f)):
            ts = int(row["ts"])
            if shift is None:
                shift = 0 if start_ms is None else start_ms - ts
            kind = row["kind"]
            if kind not in ("trade", "quote"):
                raise ValueError(f"{path}:{seq + 2}: kind must be trade or quote, not {kind!r}")
            yield Event(
                kind,  # type: ignore[arg-type]
                row["symbol"],
                seq,
                ts + shift,
                price=_ticks(row.get("price")),
                size=int(row.get("size") or 0),
                bid=_ticks(row.get("bid")),
                ask=_ticks(row.get("ask")),
            )


def _ticks(raw: str | None) -> int:
    return round(float(raw) * TICKS_PER_UNIT) if raw else 0
