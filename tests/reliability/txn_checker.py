"""Transactions in the history, and the checks Jepsen's Kafka analysis makes of them.

A consume-transform-produce copier (copier.py) reads source values and writes each, inside a
transaction together with the source offsets it consumed, as ``t<txn>:<source value>``, so every
output names the transaction that wrote it. Observers read the output topic while it runs.

Anomalies, against the history and the output read back with read_committed at the end:

- **aborted read**: a read_committed reader was handed a value of a transaction the copier
  aborted (by choice, or after an error) -- Jepsen's G1a;
- **uncommitted read**: a read_committed reader was handed a value before its transaction's
  commit was even asked for (or of a transaction never asked to commit) -- an open
  transaction's record;
- **lost commit**: a transaction the copier was told had committed is not wholly visible;
- **partial**: a transaction with an unknown outcome is partly visible (atomicity);
- **duplicate**: one source value visible twice, from two committed transactions
  (exactly-once broken: the consumed offsets did not commit with the outputs);
- **missing**: a source value never copied once the copier caught up.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final

OUTCOMES: Final = ("committed", "aborted", "unknown")


def output_value(txn: int, source_value: str) -> str:
    return f"t{txn}:{source_value}"


def parse_output(value: str) -> tuple[int, str]:
    txn, _, source = value.partition(":")
    return int(txn[1:]), source


@dataclass(frozen=True, slots=True)
class Produced:
    """The copier's transaction ``txn`` wrote ``values`` (all sent to the broker)."""

    txn: int
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Committing:
    """The copier asked to commit ``txn``: from here on its values may become visible."""

    txn: int


@dataclass(frozen=True, slots=True)
class Ended:
    txn: int
    outcome: str
    """One of OUTCOMES: what the client was told (unknown: it gave up and fenced itself)."""


@dataclass(frozen=True, slots=True)
class Observed:
    """An observer of the output topic was handed ``value``."""

    observer: str
    isolation: str
    value: str


TxnEvent = Produced | Committing | Ended | Observed


@dataclass
class TxnHistory:
    events: list[TxnEvent] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, event: TxnEvent) -> None:
        with self._lock:
            self.events.append(event)

    def fault(self, description: str) -> None:
        with self._lock:
            self.faults.append(description)


@dataclass
class TxnReport:
    outcomes: dict[str, int] = field(default_factory=dict)
    observed: int = 0
    visible: int = 0
    aborted_reads: list[str] = field(default_factory=list)
    uncommitted_reads: list[str] = field(default_factory=list)
    lost_commits: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def anomalies(self) -> dict[str, list[str]]:
        found = {
            "aborted reads": self.aborted_reads,
            "uncommitted reads": self.uncommitted_reads,
            "lost commits": self.lost_commits,
            "partial": self.partial,
            "duplicates": self.duplicates,
            "missing": self.missing,
        }
        return {name: items for name, items in found.items() if items}

    @property
    def valid(self) -> bool:
        return not self.anomalies

    def summary(self) -> str:
        counts = ", ".join(f"{name}: {len(items)}" for name, items in self.anomalies.items())
        return (
            f"transactions {self.outcomes}, {self.observed} reads observed, {self.visible} "
            f"values visible at the end; anomalies: {counts or 'none'}"
        )


def check_transactions(
    history: TxnHistory, final: list[str], sources: list[str], *, observer: str | None = None
) -> TxnReport:
    """``final``: the output topic read with read_committed after the run; ``sources``: every
    value the copier had to copy. ``observer``: check only that observer's reads (the planted
    read_uncommitted one must be caught on its own)."""
    report = TxnReport()
    produced: dict[int, set[str]] = {}
    # Outcomes are final ones, known before any read is judged: a read usually comes before
    # its transaction's end is recorded (an observer sees a value as soon as it is visible),
    # and a read of a transaction that ends aborted is an aborted read whenever it came.
    events = list(history.events)
    outcome: dict[int, str] = {e.txn: e.outcome for e in events if isinstance(e, Ended)}
    committing: set[int] = set()  # as of each read: "commit asked" must come before the read
    for event in events:
        if isinstance(event, Produced):
            produced[event.txn] = set(event.values)
        elif isinstance(event, Committing):
            committing.add(event.txn)
        elif isinstance(event, Ended):
            continue
        elif observer is None or event.observer == observer:
            if event.isolation != "read_committed" and observer is None:
                continue  # a read_uncommitted observer may see anything
            report.observed += 1
            _judge_read(event.value, committing, outcome, f"{event.observer}", report)
    for name in OUTCOMES:
        report.outcomes[name] = sum(1 for o in outcome.values() if o == name)
    _judge_final(final, produced, outcome, committing, sources, report)
    return report


def _judge_read(
    value: str, committing: set[int], outcome: dict[int, str], who: str, report: TxnReport
) -> None:
    txn, _source = parse_output(value)
    if outcome.get(txn) == "aborted":
        report.aborted_reads.append(f"{who} read {value} of aborted transaction {txn}")
    elif txn not in committing:
        report.uncommitted_reads.append(f"{who} read {value} before {txn}'s commit was asked")


def _judge_final(
    final: list[str],
    produced: dict[int, set[str]],
    outcome: dict[int, str],
    committing: set[int],
    sources: list[str],
    report: TxnReport,
) -> None:
    report.visible = len(final)
    by_txn: dict[int, set[str]] = defaultdict(set)
    copies: dict[str, list[int]] = defaultdict(list)
    for value in final:
        _judge_read(value, committing, outcome, "the final read_committed read", report)
        txn, source = parse_output(value)
        by_txn[txn].add(value)
        copies[source].append(txn)
    for txn, values in produced.items():
        got = by_txn.get(txn, set())
        ended = outcome.get(txn, "unknown")
        if ended == "committed" and got != values:
            report.lost_commits.append(f"transaction {txn}: {len(got)} of {len(values)} visible")
        elif ended == "unknown" and got not in (set(), values):
            report.partial.append(f"transaction {txn}: {len(got)} of {len(values)} visible")
    for source, txns in copies.items():
        if len(txns) > 1:
            report.duplicates.append(f"{source} copied by transactions {sorted(txns)}")
    report.missing.extend(s for s in sources if s not in copies)
