"""Live terminal views (``shoal group describe --watch``, ``shoal top``): the refresh loop
and rates.

Rates are differences of two readings (end offsets for topics, committed offsets for groups)
over the time between them. On a terminal the table is redrawn in place (rich's Live); piped,
each refresh prints one snapshot, so a script or a log sees every reading.

A refresh that fails after the first one (a broker or a group's coordinator gone, a request
without an answer) does not end the view: it shows, in place of the table, that the data is
unavailable, since when and why, and the next refresh tries again with fresh clients
(``recover``: a new worker process, see shoal.client_worker). The first refresh's failure
still ends the command, as the one-shot commands do (a wrong address or group name).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException
from rich.console import Console
from rich.live import Live
from rich.text import Text

from shoal.cli.common import CliError, positive_float
from shoal.client_worker import WorkerFailed

DEFAULT_INTERVAL_S: Final = 2.0
PIPED_WIDTH: Final = 200
"""Columns of a snapshot printed to a pipe (no terminal to ask): wide enough that a table's
columns do not wrap, so a log or grep sees one row per line."""


def add_watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval",
        metavar="SECONDS",
        type=positive_float,
        default=DEFAULT_INTERVAL_S,
        help=f"seconds between refreshes (default {DEFAULT_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--iterations",
        metavar="N",
        type=int,
        help="stop after N refreshes (default: until Ctrl-C)",
    )


def show_live(
    render: Callable[[], Any],
    interval_s: float,
    iterations: int | None,
    console: Console | None = None,
    recover: Callable[[], None] = lambda: None,
) -> None:
    """Call ``render`` every ``interval_s`` and show what it returns; Ctrl-C stops. A refresh
    failing after the first shows the outage (:class:`Outage`) and calls ``recover``."""
    out = console or Console()
    if console is None and not out.is_terminal:
        out = Console(width=PIPED_WIDTH)
    outage = Outage()

    def first() -> Any:
        try:
            return render()
        except WorkerFailed as exc:  # ends the command as its other errors do
            raise CliError(str(exc)) from None

    def refresh() -> Any:
        try:
            shown = render()
        except (CliError, KafkaException, WorkerFailed) as exc:
            recover()
            return outage.failed(exc)
        outage.ended()
        return shown

    count = 0
    try:
        if out.is_terminal:
            with Live(first(), console=out, auto_refresh=False) as live:
                count = 1
                while iterations is None or count < iterations:
                    time.sleep(interval_s)  # the refresh interval the user asked for
                    live.update(refresh(), refresh=True)
                    count += 1
        else:
            while iterations is None or count < iterations:
                if count:
                    time.sleep(interval_s)
                out.print(refresh() if count else first())
                count += 1
    except KeyboardInterrupt:
        pass


@dataclass
class Outage:
    """Refreshes failing in a row: since when, how many, and the latest reason."""

    clock: Callable[[], float] = time.time
    since: float | None = None
    failures: int = 0

    def failed(self, exc: Exception) -> Text:
        if self.since is None:
            self.since = self.clock()
        self.failures += 1
        started = time.strftime("%H:%M:%S", time.localtime(self.since))
        return Text(
            f"UNAVAILABLE since {started} ({self.failures} failed refresh"
            f"{'es' if self.failures > 1 else ''}, at {time.strftime('%H:%M:%S')}): "
            f"{reason(exc)}; retrying with fresh clients",
            style="bold red",
        )

    def ended(self) -> None:
        self.since, self.failures = None, 0


def reason(exc: Exception) -> str:
    """A failure in one line: a Kafka error's own text, else the exception's."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return str(exc.args[0].str())
    return str(exc)


@dataclass
class Rates:
    """Per-key rates from successive readings of counters that only grow (offsets); None
    for a key's first reading."""

    clock: Callable[[], float] = time.monotonic
    previous: dict[Any, int] = field(default_factory=dict)
    at: float | None = None

    def update(self, readings: dict[Any, int]) -> dict[Any, float | None]:
        now = self.clock()
        rates: dict[Any, float | None] = {}
        for key, value in readings.items():
            before = self.previous.get(key)
            if self.at is None or before is None or now <= self.at:
                rates[key] = None
            else:
                rates[key] = max(0, value - before) / (now - self.at)
        self.previous, self.at = dict(readings), now
        return rates

    def update_sums(self, readings: dict[tuple[Any, Any], int]) -> dict[Any, float | None]:
        """Rates of totals, from readings keyed ``(total, part)`` (a group and one of its
        partitions): each part's rate is its own difference, so a part's first reading is its
        baseline and adds nothing. Summing first would count a partition's first commit at
        offset 1,000,000 as a million records consumed in one refresh. None for a total none of
        whose parts has a rate yet."""
        sums: dict[Any, float | None] = {}
        for (total, _), rate in self.update(readings).items():
            if rate is None:
                sums.setdefault(total, None)
            else:
                sums[total] = (sums.get(total) or 0.0) + rate
        return sums


def rate_text(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def dash(value: int | None) -> str:
    return "-" if value is None else str(value)
