"""The checker: what the history and the final contents of the log say about the broker.

``final`` is every partition read back from offset 0 after the run, with faults over: what the
broker holds. Against it and the history the checker reports, as Jepsen's Kafka queue workload
does:

- **lost**: an acknowledged write that is not in the log at the offset it was acknowledged at;
- **duplicated**: an idempotent producer's value stored at more than one offset (a plain
  producer's retries may duplicate by Kafka's contract: counted apart, not an anomaly);
- **reordered**: an idempotent producer's values in one partition not in the order it sent them;
- **non-monotonic**: a consumer handed offsets of a partition that do not rise within one
  assignment, except a *truncation rewind*: after a crash erased records it had already been
  handed (never acknowledged: fsynced only for an acks=all ack, readable before, as in Kafka, whose
  high watermark does not wait for an fsync either), the restarted broker's new leader epoch
  sends the client's KIP-320 check (OffsetForLeaderEpoch) to where the epoch it read ended, and
  it seeks back there, so offsets go back within the assignment, over erased records only. Counted
  apart; a rewind that hands again a record the log still holds is non-monotonic;
- **skipped**: a consumer resuming from the group's committed offset that was first handed a
  later record, skipping stored ones in between, or handed offsets within one assignment that
  pass over stored ones;
- **truncation skip**: a consumer that went on past records a crash erased after handing them
  out, never seeing what the log stored at those offsets since (the partition's leader epoch
  did not change at the restart, so the client's KIP-320 check could not find the truncation);
- **lost commit**: a consumer resuming from a committed offset older than one the broker had
  already acknowledged for the group, while the group's commits never go back (each consumer
  commits only what it read past its own resume point).
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from tests.reliability.history import Commit, History, Read, Resume, Write, parse_value

Log = dict[int, list[tuple[int, str]]]
"""partition -> [(offset, value)] in offset order."""


@dataclass
class Report:
    acknowledged: int = 0
    unknown: int = 0
    """Writes whose outcome the client never learned (failed or timed out): may be stored."""
    stored: int = 0
    read_by_group: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    plain_duplicates: int = 0
    truncation_rewinds: int = 0
    """Consumers sent back over records a crash erased after they were handed out (see above)."""
    reordered: list[str] = field(default_factory=list)
    non_monotonic: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    lost_commits: list[str] = field(default_factory=list)
    truncation_skips: list[str] = field(default_factory=list)
    """Consumers that went on past records a crash erased after handing them out, so never saw
    what the log stored at those offsets afterwards. An anomaly: every broker start opens a new
    leader epoch (as a restarted Kafka leader comes back under one), so the client's
    OffsetForLeaderEpoch check finds the divergence and seeks back to it (a truncation
    rewind). Counted before epochs existed without failing the run (issue 19)."""

    @property
    def anomalies(self) -> dict[str, list[str]]:
        found = {
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "non-monotonic": self.non_monotonic,
            "skipped": self.skipped,
            "lost commits": self.lost_commits,
            "truncation skips": self.truncation_skips,
        }
        return {name: items for name, items in found.items() if items}

    @property
    def valid(self) -> bool:
        return not self.anomalies

    def summary(self) -> str:
        counts = ", ".join(f"{name}: {len(items)}" for name, items in self.anomalies.items())
        return (
            f"{self.acknowledged} acknowledged, {self.unknown} unknown, {self.stored} stored, "
            f"{self.read_by_group} read by the group ({self.truncation_rewinds} truncation "
            f"rewinds, {len(self.truncation_skips)} truncation skips); anomalies: "
            f"{counts or 'none'}"
        )


def check(history: History, final: Log) -> Report:
    report = Report(stored=sum(len(records) for records in final.values()))
    at: dict[tuple[int, int], str] = {}
    where: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for partition, records in final.items():
        for offset, value in records:
            at[(partition, offset)] = value
            where[value].append((partition, offset))
    idempotent = {w.producer for w in history.writes if w.idempotent}
    _lost(history, at, report)
    _duplicates(where, idempotent, report)
    _reordering(final, idempotent, report)
    _consumers(history, final, at, report)
    return report


def _lost(history: History, at: dict[tuple[int, int], str], report: Report) -> None:
    for write in history.writes:
        if not write.acked:
            report.unknown += 1
            continue
        report.acknowledged += 1
        assert write.offset is not None
        stored = at.get((write.partition, write.offset))
        if stored != write.value:
            report.lost.append(
                f"{write.value} acknowledged at {write.partition}@{write.offset}, "
                f"which holds {stored!r}"
            )


def _duplicates(
    where: dict[str, list[tuple[int, int]]], idempotent: set[str], report: Report
) -> None:
    for value, places in where.items():
        if len(places) < 2:
            continue
        if parse_value(value)[0] in idempotent:
            report.duplicated.append(f"{value} stored at {places}")
        else:
            report.plain_duplicates += 1


def _reordering(final: Log, idempotent: set[str], report: Report) -> None:
    for partition, records in final.items():
        last: dict[str, tuple[int, int]] = {}
        for offset, value in records:
            producer, sequence = parse_value(value)
            if producer not in idempotent:
                continue
            previous = last.get(producer)
            if previous is not None and sequence < previous[0]:
                report.reordered.append(
                    f"partition {partition}: {value} at offset {offset} after "
                    f"sequence {previous[0]} at offset {previous[1]}"
                )
            last[producer] = (sequence, offset)


def _consumers(
    history: History, final: Log, at: dict[tuple[int, int], str], report: Report
) -> None:
    report.read_by_group = len(history.reads)
    stored_offsets = {p: [offset for offset, _ in records] for p, records in final.items()}
    handed: dict[tuple[str, int, int], list[tuple[int, Read]]] = defaultdict(list)
    acked_before: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for position, event in enumerate(history.events):
        if isinstance(event, Read):
            handed[(event.consumer, event.assignment, event.partition)].append((position, event))
        elif isinstance(event, Write) and event.acked and event.offset is not None:
            acked_before[event.partition].append((position, event.offset))
    reads = {key: [r.offset for _, r in handed_reads] for key, handed_reads in handed.items()}
    for handed_reads in handed.values():
        _monotonic([r for _, r in handed_reads], at, report)
        _gaps(handed_reads, stored_offsets, at, acked_before, report)
    for resume in history.resumes:
        got = reads.get((resume.consumer, resume.assignment, resume.partition))
        if not got:
            continue
        start = resume.committed or 0
        expected = next((o for o in stored_offsets.get(resume.partition, []) if o >= start), None)
        if expected is not None and got[0] > expected:
            report.skipped.append(
                f"{resume.consumer} resumed {resume.partition} at committed offset {start} "
                f"but was first handed {got[0]}; {expected} was stored"
            )
    _commits_kept(history, report)


def _monotonic(handed: list[Read], at: dict[tuple[int, int], str], report: Report) -> None:
    """One consumer's reads of one partition within one assignment: offsets rise, but for
    truncation rewinds over records the log no longer holds."""
    since_rewind: list[Read] = []
    for read in handed:
        previous = since_rewind[-1] if since_rewind else None
        if previous is not None and read.offset <= previous.offset:
            gone = [r for r in since_rewind if r.offset >= read.offset]
            if any(at.get((r.partition, r.offset)) == r.value for r in gone):
                report.non_monotonic.append(
                    f"{read.consumer} (assignment {read.assignment}) read "
                    f"{read.partition}@{read.offset} ({read.value}) after "
                    f"{previous.partition}@{previous.offset} ({previous.value}), which the log "
                    "still holds"
                )
                return
            report.truncation_rewinds += 1
            since_rewind = [r for r in since_rewind if r.offset < read.offset]
        since_rewind.append(read)


def _gaps(
    handed: list[tuple[int, Read]],
    stored_offsets: dict[int, list[int]],
    at: dict[tuple[int, int], str],
    acked_before: dict[int, list[tuple[int, int]]],
    report: Report,
) -> None:
    """Rising reads of one assignment pass over no stored record, but for truncation skips.

    ``handed`` holds each read with its position in the history; ``acked_before`` each
    partition's acknowledged writes as (position in the history, offset).
    """
    for (_, previous), (position, read) in itertools.pairwise(handed):
        if read.offset <= previous.offset:
            continue  # a rewind: _monotonic judges it
        now = at.get((previous.partition, previous.offset))
        if now is not None and now != previous.value:
            erased_too = at.get((read.partition, read.offset)) != read.value
            if erased_too and not _stored_between(
                acked_before[read.partition], position, previous.offset, read.offset
            ):
                # Read from the same erased tail (one fetch, before the crash): it skipped
                # nothing yet; the pair that leaves the erased tail is judged instead. But
                # when an acknowledged write had landed between the two before ``read`` was
                # handed, a crash came between them (``read`` is of a later tail, a second
                # crash erased it) and the consumer went past that write.
                continue
            report.truncation_skips.append(
                f"{read.consumer} (assignment {read.assignment}) was handed "
                f"{previous.partition}@{previous.offset} ({previous.value}), which a crash "
                f"erased, then {read.offset}: never saw {now}, stored there since"
            )
            continue
        stored = stored_offsets.get(read.partition, [])
        passed = stored[
            bisect.bisect_right(stored, previous.offset) : bisect.bisect_left(stored, read.offset)
        ]
        if passed:
            report.skipped.append(
                f"{read.consumer} (assignment {read.assignment}) read "
                f"{read.partition}@{read.offset} after {previous.partition}@{previous.offset}, "
                f"passing over stored offsets {passed[:5]}"
            )
            return


def _stored_between(acked: list[tuple[int, int]], before: int, low: int, high: int) -> bool:
    """An acknowledged write at an offset in [low, high) was recorded before position ``before``."""
    return any(position < before and low <= offset < high for position, offset in acked)


def _commits_kept(history: History, report: Report) -> None:
    """A resume starts at or after every commit acknowledged before it.

    Only the owner of a partition's current assignment can commit it (the broker refuses a
    stale generation), and each owner commits only past where it resumed, so the group's
    acknowledged commits of a partition never go back; a resume from an older offset means
    the broker forgot an acknowledged commit.
    """
    acknowledged: dict[int, Commit] = {}
    for event in history.events:
        if isinstance(event, Commit):
            best = acknowledged.get(event.partition)
            if best is None or event.offset > best.offset:
                acknowledged[event.partition] = event
        elif isinstance(event, Resume):
            best = acknowledged.get(event.partition)
            if best is not None and (event.committed or 0) < best.offset:
                report.lost_commits.append(
                    f"{event.consumer} resumed {event.partition} at {event.committed}, but "
                    f"{best.consumer}'s commit of {best.offset} had been acknowledged"
                )
