"""Crash loop: SIGKILL a writer process at random moments and check what recovery keeps.

A writer process (``crash_writer.py``) appends batches from several threads under the default
SYNC policy with 256 KiB segments, printing a line when each append returns and another when its
``wait_durable`` completes (the acknowledgement). The test SIGKILLs it, recovers the directory
with ``LogManager.open`` and walks the whole log; then the next writer reopens the same
directory and carries on. Each kill comes one of three ways, chosen by a seeded RNG: during
start-up (imports, recovery, log creation), at a random moment up to 0.3 s into appending, or
from the writer itself in the middle of a large write (the only way to tear batches often; see
``crash_writer._SelfKill``).

What a SIGKILL must not do, checked after every kill:

- lose or move an acknowledged batch: each is at its acknowledged offsets, byte-identical except
  the baseOffset the log writes;
- leave a hole or an overlap: offsets run contiguously from 0 to the log end;
- keep a damaged batch: every batch in the log, acknowledged or not, is rebuilt from the seed it
  carries and compared byte for byte (so a torn tail must be cut, not kept);
- duplicate a batch (each seed is unique in the run);
- go backwards: everything an earlier check found (recovery fsynced it) is still there, so the
  log end never drops below an acknowledged offset + 1;
- lose a batch whose write completed: a killed process loses no page cache, so every batch whose
  ``append`` returned is still there even if it was never acknowledged;
- recover differently in the writer than in the checker: the writer's log end at start-up equals
  what the checker found.

Half the checks recover the directory in place (the next writer then starts from a clean
shutdown), half recover a copy (the next writer recovers the crash itself and appends after it).

A SIGKILL cannot show a missing fsync (the page cache survives); the power-loss tests with the
fault-injecting filesystem cover that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from shoal.records.header import read_header
from shoal.storage import LogManager, PartitionLog
from tests.storage.batches import payload_of
from tests.storage.crash_writer import (
    PARTITION,
    TOPIC,
    build_batch,
    log_config,
    seed_of,
)

WRITER: Final = Path(__file__).with_name("crash_writer.py")
LOOPS_DEFAULT: Final = 25
"""Kills in `make test` (a fifth at start-up, the rest amid appends); `make crash-full` runs 500."""
SEED_DEFAULT: Final = 20240611
LOG_BYTES_MAX: Final = 16 * 1024 * 1024
"""Start a fresh directory once the log passes this: each check walks the whole log, so an
unbounded log would make the long mode (500 kills) quadratic."""
READ_BYTES_CHOICES: Final = (1, 4 * 1024, 64 * 1024, 1024 * 1024)
READY_TIMEOUT_S: Final = 30.0
"""Generous: start-up plus recovery of at most LOG_BYTES_MAX on a loaded CI machine."""
POLL_S: Final = 0.002
EARLY_KILL_FRACTION: Final = 0.2
"""Share of kills aimed at start-up (recovery, log creation) rather than at appends."""
APPEND_KILL_DELAY_S_MAX: Final = 0.3
"""Kills during appends land up to this long after the writer is ready: long enough to cross
segment rolls and group commits, short enough to keep the quick mode near a minute."""
SELF_KILL_FRACTION: Final = 0.3
"""Share of kills the writer sends itself from inside a large write (see crash_writer), the only
way to tear batches often: a write into the page cache is over in a tenth of a millisecond."""
SELF_KILL_TIMEOUT_S: Final = 10.0
IN_PLACE_FRACTION: Final = 0.5
TORN_TAIL: Final = re.compile(r"cutting torn tail at byte (\d+)")
"""Recovery's warning when it cuts a torn batch (counted to show the loop exercises it)."""


@dataclass
class WriterOutput:
    """What a killed writer printed (whole lines only: the kill may cut the last one)."""

    ready_end: int | None = None
    ready_after_s: float | None = None
    written: list[tuple[int, int, int]] = field(default_factory=list)
    acked: list[tuple[int, int, int]] = field(default_factory=list)


@dataclass
class Generation:
    """One log directory and what earlier checks established about it."""

    directory: Path
    batches: dict[int, tuple[int, int]] = field(default_factory=dict)
    """base offset -> (last offset, seed) of every batch the last check found."""
    acked: dict[int, tuple[int, int]] = field(default_factory=dict)
    """base offset -> (last offset, seed) of every batch ever acknowledged in this directory."""
    log_end: int = 0


@dataclass
class Stats:
    kills: int = 0
    kills_before_ready: int = 0
    torn_tails_cut: int = 0
    torn_mid_segment: int = 0
    acked: int = 0
    unacked_kept: int = 0
    generations: int = 1

    def summary(self) -> str:
        return (
            f"{self.kills} kills ({self.kills_before_ready} before the log was ready), "
            f"{self.acked} batches acknowledged, {self.unacked_kept} unacknowledged batches "
            f"kept by recovery, {self.torn_tails_cut} torn tails cut "
            f"({self.torn_mid_segment} after other batches of their segment), "
            f"{self.generations} directories"
        )


def parse_output(text: str) -> WriterOutput:
    out = WriterOutput()
    lines = text.split("\n")
    for line in lines[:-1]:  # the piece after the last newline is a cut line (or empty)
        kind, *fields = line.split()
        if kind == "ready":
            out.ready_end = int(fields[0])
            continue
        base, last, seed = (int(f) for f in fields)
        (out.written if kind == "w" else out.acked).append((base, last, seed))
    return out


def wait_until_ready(out_path: Path, proc: subprocess.Popen[bytes]) -> float:
    """Seconds from now until the writer printed its ready line."""
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if out_path.read_bytes().startswith(b"ready "):
            return time.monotonic() - started
        if proc.poll() is not None:
            return time.monotonic() - started  # the caller reports the unexpected exit
        time.sleep(POLL_S)
    raise AssertionError(f"writer not ready after {READY_TIMEOUT_S} s")


def walk_log(
    log: PartitionLog, run_seed: int, timestamp_ms: int, rng: random.Random
) -> dict[int, tuple[int, int]]:
    """Read the whole log with ``read()`` and check every batch; return what it holds.

    Read sizes vary (seeded) so that reads end mid-segment too, and the next read starts from
    a remembered position or an index lookup rather than a segment's start.
    """
    assert log.log_start_offset == 0, "nothing deletes records here: the log must start at 0"
    found: dict[int, tuple[int, int]] = {}
    seeds: set[int] = set()
    offset, end = 0, log.log_end_offset
    while offset < end:
        result = log.read(offset, rng.choice(READ_BYTES_CHOICES))
        assert result.data, f"hole: read({offset}) returned nothing below log end {end}"
        assert result.first_offset == offset, (
            f"read({offset}) started at {result.first_offset}: batches overlap or are misplaced"
        )
        data = memoryview(result.data)
        position = 0
        while position < len(data):
            header = read_header(data, position)
            assert header.base_offset == offset, (
                f"batch with base offset {header.base_offset} where {offset} was expected"
            )
            seed = seed_of(data, position)
            expected = build_batch(run_seed, seed, timestamp_ms)
            stored = bytes(data[position : position + header.size])
            intact = payload_of(stored) == payload_of(expected)
            assert intact, (
                f"batch at offset {offset} (seed {seed}, {header.size} bytes) is not the batch "
                "the writer appended: damaged, torn or misplaced"
            )
            assert seed not in seeds, f"batch seed {seed} appears twice (again at {offset})"
            seeds.add(seed)
            found[offset] = (header.last_offset, seed)
            offset = header.next_offset
            position += header.size
        assert result.next_offset == offset, (
            f"read() said the next offset is {result.next_offset}, its batches end at {offset}"
        )
    assert offset == end, f"batches end at {offset}, past the log end {end}"
    return found


def recover_and_walk(
    directory: Path, run_seed: int, timestamp_ms: int, rng: random.Random
) -> tuple[dict[int, tuple[int, int]], int, int]:
    """Open ``directory`` (recovering it) and walk it: (batches, log end, log bytes)."""
    with LogManager.open(str(directory), default_config=log_config()) as manager:
        assert not manager.offline, f"recovery refused a partition: {manager.offline}"
        log = manager.get(TOPIC, PARTITION)
        if log is None:  # killed before it created the log: nothing was ever appended
            return {}, 0, 0
        return walk_log(log, run_seed, timestamp_ms, rng), log.log_end_offset, log.size_bytes


def check_after_kill(
    gen: Generation,
    out: WriterOutput,
    found: dict[int, tuple[int, int]],
    log_end: int,
    context: str,
) -> None:
    if out.ready_end is not None:
        assert out.ready_end == gen.log_end, (
            f"{context}: the writer recovered to log end {out.ready_end}, the previous check "
            f"found {gen.log_end}"
        )
    for base, last_and_seed in gen.batches.items():
        assert found.get(base) == last_and_seed, (
            f"{context}: batch at offset {base} (last, seed) = {last_and_seed} found by the "
            f"previous check is now {found.get(base)}"
        )
    assert log_end >= gen.log_end, f"{context}: log end went back from {gen.log_end} to {log_end}"
    for base, last, seed in out.acked:
        gen.acked[base] = (last, seed)
    for base, last_and_seed in gen.acked.items():
        assert found.get(base) == last_and_seed, (
            f"{context}: acknowledged batch at offset {base} (last, seed) = {last_and_seed} "
            f"is {'missing' if base not in found else found[base]} after recovery"
        )
        assert log_end > last_and_seed[0], f"{context}: log end {log_end} below an ack"
    for base, last, seed in out.written:
        assert found.get(base) == (last, seed), (
            f"{context}: batch at offset {base} whose write had completed (seed {seed}) is "
            f"{'missing' if base not in found else found[base]}: a SIGKILL keeps the page cache"
        )


def run_writer_and_kill(
    gen: Generation,
    iteration: int,
    run_seed: int,
    timestamp_ms: int,
    rng: random.Random,
    startup_s: float,
    work: Path,
) -> WriterOutput:
    """Start a writer on ``gen``'s directory and SIGKILL it in one of three ways (seeded)."""
    command = [
        sys.executable,
        str(WRITER),
        str(gen.directory),
        f"--run-seed={run_seed}",
        f"--iteration={iteration}",
        f"--timestamp-ms={timestamp_ms}",
    ]
    how = rng.random()
    early = how < EARLY_KILL_FRACTION
    self_kill = not early and how < EARLY_KILL_FRACTION + SELF_KILL_FRACTION
    if self_kill:
        command.append(f"--self-kill-after-s={rng.uniform(0.0, APPEND_KILL_DELAY_S_MAX)}")
    out_path, err_path = work / "writer.out", work / "writer.err"
    with out_path.open("wb") as stdout, err_path.open("wb") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr)
    ready_after_s: float | None = None
    try:
        if early:
            # Aim at start-up: most of it is imports, the end is recovery and log creation.
            time.sleep(rng.uniform(0.5, 1.05) * startup_s)
        else:
            ready_after_s = wait_until_ready(out_path, proc)
            if self_kill:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(SELF_KILL_TIMEOUT_S)  # else killed from here, just as well
            else:
                time.sleep(rng.uniform(0.0, APPEND_KILL_DELAY_S_MAX))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        returncode = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert returncode == -signal.SIGKILL, (
        f"writer exited by itself with {returncode}: {err_path.read_text(errors='replace')}"
    )
    out = parse_output(out_path.read_text())
    out.ready_after_s = ready_after_s
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loops = int(os.environ.get("SHOAL_CRASH_LOOPS", str(LOOPS_DEFAULT)))
    run_seed = int(os.environ.get("SHOAL_CRASH_SEED", str(SEED_DEFAULT)))
    rng = random.Random(run_seed)
    timestamp_ms = time.time_ns() // 1_000_000
    caplog.set_level(logging.WARNING, logger="shoal.storage")
    stats = Stats()
    gen = Generation(tmp_path / "gen0")
    startup_s = 0.3  # first guess of spawn-to-ready; replaced by what is measured
    try:
        for iteration in range(loops):
            context = f"kill {iteration} (SHOAL_CRASH_SEED={run_seed})"
            out = run_writer_and_kill(
                gen, iteration, run_seed, timestamp_ms, rng, startup_s, tmp_path
            )
            stats.kills += 1
            if out.ready_end is None:
                stats.kills_before_ready += 1
            elif out.ready_after_s is not None:
                startup_s = out.ready_after_s
            caplog.clear()
            if rng.random() < IN_PLACE_FRACTION:
                found, log_end, log_bytes = recover_and_walk(
                    gen.directory, run_seed, timestamp_ms, rng
                )
            else:
                copy = tmp_path / "check-copy"
                if gen.directory.exists():
                    shutil.copytree(gen.directory, copy)
                else:  # killed before LogManager.open() made the directory
                    copy.mkdir()
                try:
                    found, log_end, log_bytes = recover_and_walk(copy, run_seed, timestamp_ms, rng)
                finally:
                    shutil.rmtree(copy)
            for record in caplog.records:
                torn_at = TORN_TAIL.search(record.getMessage())
                if torn_at is not None:
                    stats.torn_tails_cut += 1
                    stats.torn_mid_segment += int(torn_at.group(1)) > 0
            check_after_kill(gen, out, found, log_end, context)
            stats.acked += len(out.acked)
            stats.unacked_kept += sum(
                1 for base in found if base >= gen.log_end and base not in gen.acked
            )
            gen.batches, gen.log_end = found, log_end
            if log_bytes > LOG_BYTES_MAX:
                shutil.rmtree(gen.directory)
                gen = Generation(tmp_path / f"gen{iteration + 1}")
                stats.generations += 1
    finally:
        shutil.rmtree(gen.directory, ignore_errors=True)
    print(f"crash loop: {stats.summary()}")
    assert stats.acked > 0, "no batch was ever acknowledged: the loop checked nothing"
