"""OHLC bars with VWAP: the aggregation the bar service folds trades into, and the windows it
keeps them on.

A bar's open and close are the trades with the smallest and largest (event time, sequence)
in its window, not the first and last to *arrive*: out-of-order trades land where their
exchange timestamps put them, so a bar is the same whatever order its trades came in.
"""

from __future__ import annotations

from typing import Any

from shoal.app.streams import Aggregation, Hopping, Tumbling

ALLOWED_LATENESS_MS = 1_000
"""Trades may arrive up to a second behind the newest one and still count."""
BAR_WINDOWS: dict[str, Hopping] = {
    "1s": Tumbling(1_000),
    "1m": Tumbling(60_000),
    "5s-every-1s": Hopping(5_000, 1_000),
}
"""Bar series by name: what the bar service computes for every symbol."""

Bar = dict[str, Any]
"""{"o","h","l","c": price ticks, "ot"/"ct": [ts, seq] of the open/close trade,
"v": volume, "pv": sum of price x size, "n": trades}"""


Trade = tuple[int, int, int]
"""(seq, price ticks, size): what a bar folds in, at the trade's event time."""


def _add(bar: Bar, trade: Trade, ts_ms: int) -> Bar:
    seq, price, size = trade
    at = [ts_ms, seq]
    if not bar:
        return {"o": price, "h": price, "l": price, "c": price, "ot": at, "ct": at,
                "v": size, "pv": price * size, "n": 1}  # fmt: skip
    out = dict(bar)
    if at < bar["ot"]:
        out["o"], out["ot"] = price, at
    if at > bar["ct"]:
        out["c"], out["ct"] = price, at
    out["h"] = max(bar["h"], price)
    out["l"] = min(bar["l"], price)
    out["v"] = bar["v"] + size
    out["pv"] = bar["pv"] + price * size
    out["n"] = bar["n"] + 1
    return out


OHLC: Aggregation[Trade, Bar] = Aggregation(initial=dict, add=_add)
"""Folds trades into a :data:`Bar`."""


def vwap(bar: Bar) -> float:
    """Volume-weighted average price, in ticks."""
    return float(bar["pv"]) / float(bar["v"])


def bar_of(trades: list[tuple[int, int, int, int]]) -> Bar:
    """A bar computed from scratch (what the tests compare the service's bars with): trades
    as (ts, seq, price, size)."""
    ordered = sorted(trades)
    return {
        "o": ordered[0][2],
        "h": max(t[2] for t in ordered),
        "l": min(t[2] for t in ordered),
        "c": ordered[-1][2],
        "ot": [ordered[0][0], ordered[0][1]],
        "ct": [ordered[-1][0], ordered[-1][1]],
        "v": sum(t[3] for t in ordered),
        "pv": sum(t[2] * t[3] for t in ordered),
        "n": len(ordered),
    }
