"""The latency monitor: how long after its exchange timestamp an event reached each stage.

Samples are kept per stage up to a bound and summarised as p50/p99/p99.9 (nearest rank), the
figures a trading desk watches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SAMPLES_PER_STAGE_MAX = 1_000_000
"""Beyond this, samples are taken one in two, then one in four... (memory stays bounded)."""
PERCENTILES = (50.0, 99.0, 99.9)


@dataclass
class Stage:
    samples_ms: list[float] = field(default_factory=list)
    at_ms: list[float] = field(default_factory=list)
    """When each sample was taken (wall clock ms): the latency-over-time chart."""
    every: int = 1
    seen: int = 0

    def add(self, latency_ms: float, now_ms: float) -> None:
        self.seen += 1
        if self.seen % self.every:
            return
        self.samples_ms.append(latency_ms)
        self.at_ms.append(now_ms)
        if len(self.samples_ms) >= SAMPLES_PER_STAGE_MAX:
            self.samples_ms = self.samples_ms[::2]
            self.at_ms = self.at_ms[::2]
            self.every *= 2


def percentile(sorted_ms: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_ms:
        return math.nan
    # Rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point, not 999.
    rank = max(1, math.ceil(round(pct * len(sorted_ms) / 100, 9)))
    return sorted_ms[rank - 1]


class LatencyMonitor:
    def __init__(self) -> None:
        self.stages: dict[str, Stage] = {}
        self.setting_up: str | None = "starting the App and its broker"
        """What the pipeline is waiting for before the feed starts (None once it has): the
        live view says so instead of printing zeros."""

    def record(self, stage: str, exchange_ts_ms: int, now_ms: float) -> None:
        # Called for every event at every stage: no Stage built only to be thrown away.
        data = self.stages.get(stage)
        if data is None:
            data = self.stages[stage] = Stage()
        data.add(now_ms - exchange_ts_ms, now_ms)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage: count and the percentiles, in ms."""
        out = {}
        for name, stage in self.stages.items():
            ordered = sorted(stage.samples_ms)
            row = {"count": float(stage.seen)}
            row.update({f"p{p:g}": percentile(ordered, p) for p in PERCENTILES})
            out[name] = row
        return out

    def render(self) -> str:
        lines = [f"{'stage':<22}{'events':>9}{'p50 ms':>10}{'p99 ms':>10}{'p99.9 ms':>10}"]
        for name, row in self.summary().items():
            lines.append(
                f"{name:<22}{int(row['count']):>9}{row['p50']:>10.2f}{row['p99']:>10.2f}"
                f"{row['p99.9']:>10.2f}"
            )
        return "\n".join(lines)
