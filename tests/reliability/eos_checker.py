"""The checks of test_eos_app_kills.py: an output topic against the source it was copied from.

Every source record is ``<key>:<sequence>`` under its key; an app's output record is
``<source record>|<tag>`` under the same key. The output is read back after the run, each
partition in offset order. Anomalies:

- **missing**: a source record with no output (a committed input lost);
- **duplicate**: a source record with two or more outputs (exactly-once broken);
- **reordered**: a key's outputs not in its source order;
- **unexpected**: an output of no source record;
- for the raw loop, whose tags name its transactions (eos_apps.py) and whose events say what it
  was told of each: **aborted read** (an output of a transaction it aborted), **uncommitted
  read** (of a transaction whose commit it never asked for), **lost commit** (a committed
  transaction not wholly visible) and **partial** (a transaction of unknown outcome partly
  visible).

A read_committed read that showed an aborted transaction's records would show duplicates here
even without the tags: the aborted batch's inputs are read again (their offsets did not commit)
and copied again by a later transaction, and the run ends only once every input is copied. So
the same checks over a read_uncommitted read must object: that is the planted bug.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final


@dataclass(frozen=True, slots=True)
class Output:
    partition: int
    key: str
    value: str
    """``<source record>|<tag>``."""

    @property
    def source(self) -> str:
        return self.value.rpartition("|")[0]

    @property
    def tag(self) -> str:
        return self.value.rpartition("|")[2]


ANOMALIES: Final = (
    "missing",
    "duplicates",
    "reordered",
    "unexpected",
    "aborted reads",
    "uncommitted reads",
    "lost commits",
    "partial",
)


@dataclass
class EosReport:
    name: str
    records: int = 0
    transactions: dict[str, int] = field(default_factory=dict)
    anomalies: dict[str, list[str]] = field(default_factory=dict)
    """Of the kinds in ANOMALIES, those found, each with what was found."""

    def add(self, kind: str, found: list[str]) -> None:
        assert kind in ANOMALIES, kind
        if found:
            self.anomalies.setdefault(kind, []).extend(found)

    @property
    def valid(self) -> bool:
        return not self.anomalies

    def summary(self) -> str:
        counts = ", ".join(f"{kind}: {len(found)}" for kind, found in self.anomalies.items())
        txns = f", transactions {self.transactions}" if self.transactions else ""
        return f"{self.name}: {self.records} records checked{txns}; anomalies: {counts or 'none'}"


def check_copy(
    name: str, source: list[tuple[str, str]], output: list[Output], events: Path | None = None
) -> EosReport:
    """``source``: (key, record) in each key's source order; ``output``: the output topic, each
    partition in offset order; ``events``: the raw loop's transaction log, if it wrote one."""
    report = EosReport(name, records=len(source))
    wanted: dict[str, list[str]] = defaultdict(list)
    for key, record in source:
        wanted[key].append(record)
    known = {record for _key, record in source}
    got: dict[str, list[str]] = defaultdict(list)
    for out in output:
        got[out.key].append(out.source)
    counts = Counter(out.source for out in output)
    report.add("duplicates", sorted(f"{s} copied {n} times" for s, n in counts.items() if n > 1))
    report.add("missing", sorted(s for s in known if s not in counts))
    report.add("unexpected", sorted(s for s in counts if s not in known))
    for key, records in got.items():
        # First copies of this key's source records, in output order (unexpected ones and
        # duplicates are reported above), against the source's order of the same records.
        firsts = [r for r in dict.fromkeys(records) if r in known]
        copied = set(firsts)
        expected = [r for r in wanted.get(key, []) if r in copied]
        if firsts != expected:
            pairs = enumerate(zip(firsts, expected, strict=False))
            at = next((i for i, (a, b) in pairs if a != b), min(len(firsts), len(expected)))
            report.add(
                "reordered", [f"key {key}: {firsts[at : at + 3]} where {expected[at : at + 3]}"]
            )
    if events is not None:
        _check_transactions(report, output, events)
    return report


def _check_transactions(report: EosReport, output: list[Output], events: Path) -> None:
    prepared: dict[str, int] = {}
    ended: dict[str, str] = {}
    for line in events.read_text().splitlines():
        kind, tag, *rest = line.split()
        if kind == "P":
            prepared[tag] = int(rest[0])
        else:
            ended[tag] = kind
    visible = Counter(out.tag for out in output)
    report.transactions = {
        "committed": sum(1 for o in ended.values() if o == "C"),
        "aborted": sum(1 for o in ended.values() if o == "A"),
        "unknown": sum(1 for t in prepared if t not in ended),
    }
    for tag, n in visible.items():
        if ended.get(tag) == "A":
            report.add("aborted reads", [f"{n} records of aborted transaction {tag}"])
        elif tag not in prepared:
            report.add("uncommitted reads", [f"{n} records of {tag}, whose commit was not asked"])
        elif n != prepared[tag]:
            report.add("partial", [f"{n} of {prepared[tag]} records of {tag} visible"])
    for tag, outcome in ended.items():
        if outcome == "C" and visible.get(tag, 0) != prepared.get(tag):
            lost = f"{visible.get(tag, 0)} of {prepared.get(tag)} of {tag}"
            report.add("lost commits", [lost])
