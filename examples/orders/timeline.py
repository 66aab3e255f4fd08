"""What happened, in order, as the services saw it: printed at the end of a run.

Every service writes to one Timeline on the scenario's event loop, so no lock is needed and
the entries are in the order the handlers ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Entry:
    at_s: float
    service: str
    order_id: str
    text: str


@dataclass
class Timeline:
    clock_s: Callable[[], float] = time.monotonic
    entries: list[Entry] = field(default_factory=list)
    _origin_s: float | None = None

    def add(self, service: str, order_id: str, text: str) -> None:
        now_s = self.clock_s()
        if self._origin_s is None:
            self._origin_s = now_s
        self.entries.append(Entry(now_s - self._origin_s, service, order_id, text))

    def for_order(self, order_id: str) -> list[str]:
        return [e.text for e in self.entries if e.order_id == order_id]

    def render(self) -> str:
        return "\n".join(
            f"{e.at_s:8.3f}s  {e.service:<10} {e.order_id:<6} {e.text}" for e in self.entries
        )
