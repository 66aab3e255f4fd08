"""The process that test_crash_sigkill.py kills: appends batches under SYNC until SIGKILLed.

Run as ``python tests/storage/crash_writer.py DIR --run-seed S --iteration I ...``. It opens the
log manager on DIR (recovering whatever the previous, killed writer left), prints
``ready <log_end>``, and then several threads append batches and wait for durability, printing
per batch::

    w <base> <last> <seed>   after append() returned: the bytes are in the page cache
    a <base> <last> <seed>   after wait_durable(last).result() returned: acknowledged

Each line goes out in one unbuffered write to stdout (a file the test reads after the kill), so a
line is either whole or, if the kill cut it, has no newline and is ignored.

With ``--self-kill-after-s`` the writer SIGKILLs itself in the middle of a large write some time
after it is ready (see :class:`_SelfKill`): the way to get torn batches often.

Every batch is rebuilt exactly from ``(run seed, batch seed, timestamp)`` with
:func:`build_batch`, and carries its batch seed in its first payload bytes, so the checker can
verify any batch it finds in the log, acknowledged or not, without being told about it.

The imports are kept to what appending needs: the test starts this process 50+ times and Python
start-up is most of each iteration.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Final

from shoal.buffers import Buffer
from shoal.records.header import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_V2,
    BatchHeader,
    refresh_crc,
    write_header,
)
from shoal.storage import File, LogConfig, LogManager, OsFileSystem

TOPIC: Final = "crash"
PARTITION: Final = 0
SEGMENT_BYTES: Final = 256 * 1024
"""Small segments, so that a run of a second rolls several times and kills land near rolls."""
SEED_BYTES: Final = 8
"""The batch seed, big-endian, opens the payload: the checker reads it to rebuild the batch."""
THREAD_SHIFT: Final = 24
ITERATION_SHIFT: Final = 32
MAX_THREADS: Final = 1 << (ITERATION_SHIFT - THREAD_SHIFT)
MAX_BATCHES_PER_THREAD: Final = 1 << THREAD_SHIFT
TEAR_TARGET_FLAG: Final = 1 << 62
"""Seed bit of a batch built large on purpose, for the self-kill to tear."""
TEAR_MIN_WRITE_BYTES: Final = 64 * 1024
"""Writes from this size up span several folios, so a SIGKILL during one can tear it."""
PATTERN_PERIOD_BYTES: Final = 8191
"""Period of a payload's random pattern: prime, so no two pages of a batch hold the same bytes."""
WATCHDOG_PERIOD_S: Final = 0.1

EXIT_DEADLINE: Final = 3
EXIT_ORPHANED: Final = 4
EXIT_APPEND_FAILED: Final = 5


def log_config() -> LogConfig:
    """The config of the writer and of the test's checker: both must recover alike."""
    return LogConfig(segment_bytes=SEGMENT_BYTES)


def batch_seed(iteration: int, thread: int, counter: int, *, tear_target: bool = False) -> int:
    """A seed unique across the whole test run: (iteration, thread, counter) packed in bits,
    plus a flag that makes :func:`build_batch` build a batch large enough to be torn."""
    flag = TEAR_TARGET_FLAG if tear_target else 0
    return flag | (iteration << ITERATION_SHIFT) | (thread << THREAD_SHIFT) | counter


def build_batch(run_seed: int, seed: int, timestamp_ms: int) -> bytes:
    """A valid RecordBatch v2 (correct CRC, baseOffset 0) whose every byte follows from the
    arguments: record count, payload size and payload bytes all come from a seeded RNG.

    Sizes are mostly small with a tail of large batches (which trigger segment rolls); tear
    targets (:data:`TEAR_TARGET_FLAG`) are larger still.
    """
    rng = random.Random((run_seed << 64) | seed)
    shape = rng.random()
    if seed & TEAR_TARGET_FLAG:
        # Half fit behind other batches in the active segment (a tear mid-segment), half are
        # alone in a segment of their own and cross the 2 MiB folio boundary.
        if shape < 0.5:
            payload_bytes = rng.randint(64 * 1024, 192 * 1024)
        else:
            payload_bytes = rng.randint(2 * 1024 * 1024, 4 * 1024 * 1024)
    elif shape < 0.70:
        payload_bytes = rng.randint(16, 2048)
    elif shape < 0.94:
        payload_bytes = rng.randint(2048, 16 * 1024)
    else:
        payload_bytes = rng.randint(64 * 1024, 512 * 1024)
    records = rng.randint(1, 20)
    # A random block repeated to the payload size: generating every byte would make building
    # a large batch take longer than writing it, and the share of time the writer spends inside
    # a large write is what makes a kill tear a batch. The odd period keeps pages of one batch
    # distinct from each other, so a misplaced page still shows.
    block = rng.randbytes(min(payload_bytes, PATTERN_PERIOD_BYTES))
    repeats = -(-payload_bytes // len(block))
    body = seed.to_bytes(SEED_BYTES, "big") + (block * repeats)[:payload_bytes]
    batch = bytearray(HEADER_SIZE + len(body))
    header = BatchHeader(
        base_offset=0,
        batch_length=len(batch) - LOG_OVERHEAD,
        partition_leader_epoch=-1,
        magic=MAGIC_V2,
        crc=0,
        attributes=0,
        last_offset_delta=records - 1,
        base_timestamp=timestamp_ms,
        max_timestamp=timestamp_ms,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        record_count=records,
    )
    write_header(batch, 0, header)
    batch[HEADER_SIZE:] = body
    refresh_crc(batch)
    return bytes(batch)


def seed_of(batch: bytes | memoryview, position: int = 0) -> int:
    """The batch seed a batch built by :func:`build_batch` carries at the start of its payload."""
    start = position + HEADER_SIZE
    return int.from_bytes(batch[start : start + SEED_BYTES], "big")


class _Out:
    """Writes whole lines to stdout with one syscall each, so that threads never interleave
    and a line reaches the file before the next append starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        data = (text + "\n").encode()
        with self._lock:
            while data:
                data = data[os.write(1, data) :]


class _SelfKill:
    """SIGKILLs this process in the middle of writing a large batch, to tear that batch.

    Linux stops a write for a fatal signal only between the folios it copies into the page
    cache, and ext4 uses folios of up to 2 MiB, so a batch under a few hundred KiB is written
    whole or not at all, and a kill from outside (a random moment) almost never tears one.
    Once armed, one appender builds a tear target of up to 4 MiB, and the file layer wakes the
    killer just before any large write; the killer needs the GIL, which the writing thread
    releases only inside the write syscall, so the SIGKILL lands mid-write and the kernel leaves
    a short write behind, as a kill from anywhere would at that moment.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed = threading.Event()
        self._fire = threading.Event()
        self._claimed = False

    def start(self, after_s: float) -> None:
        threading.Thread(target=self._run, args=(after_s,), daemon=True).start()

    def claim(self) -> bool:
        """True (once, after arming) for the thread whose next batch is the tear target."""
        if not self._armed.is_set():
            return False
        with self._lock:
            claimed, self._claimed = self._claimed, True
        return not claimed

    def before_write(self, write_bytes: int) -> None:
        if write_bytes >= TEAR_MIN_WRITE_BYTES and self._armed.is_set():
            self._fire.set()

    def _run(self, after_s: float) -> None:
        time.sleep(after_s)
        self._armed.set()
        self._fire.wait()
        os.kill(os.getpid(), signal.SIGKILL)


class _KillableFile:
    """A real segment file that lets :class:`_SelfKill` fire just before each write."""

    def __init__(self, file: File, self_kill: _SelfKill) -> None:
        self._file = file
        self._self_kill = self_kill

    @property
    def path(self) -> str:
        return self._file.path

    def size(self) -> int:
        return self._file.size()

    def append(self, parts: Sequence[Buffer]) -> None:
        self._self_kill.before_write(sum(memoryview(p).nbytes for p in parts))
        self._file.append(parts)

    def pread(self, size: int, position: int) -> bytes:
        return self._file.pread(size, position)

    def pread_cached(self, size: int, position: int) -> bytearray | None:
        return self._file.pread_cached(size, position)

    def fsync(self) -> None:
        self._file.fsync()

    def truncate(self, size: int) -> None:
        self._file.truncate(size)

    def close(self) -> None:
        self._file.close()

    def fileno(self) -> int | None:
        return self._file.fileno()


class _KillableFileSystem(OsFileSystem):
    """The real filesystem, with segment files wrapped in :class:`_KillableFile`. Storage
    takes its file layer as a parameter for fault injection like this."""

    def __init__(self, self_kill: _SelfKill) -> None:
        super().__init__()
        self._self_kill = self_kill

    def open(self, path: str, *, create: bool = False) -> File:
        file = super().open(path, create=create)
        return _KillableFile(file, self._self_kill) if path.endswith(".log") else file


def _append_forever(
    manager: LogManager, out: _Out, self_kill: _SelfKill, args: argparse.Namespace, thread: int
) -> None:
    log = manager.get(TOPIC, PARTITION)
    assert log is not None
    try:
        for counter in range(MAX_BATCHES_PER_THREAD):
            seed = batch_seed(args.iteration, thread, counter, tear_target=self_kill.claim())
            info = log.append(build_batch(args.run_seed, seed, args.timestamp_ms))
            out.line(f"w {info.base_offset} {info.last_offset} {seed}")
            log.wait_durable(info.last_offset).result()
            out.line(f"a {info.base_offset} {info.last_offset} {seed}")
    except BaseException as exc:  # any failure must be loud: the test then sees the exit code
        print(f"writer thread {thread} failed: {exc!r}", file=sys.stderr, flush=True)
        os._exit(EXIT_APPEND_FAILED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--run-seed", type=int, required=True)
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--timestamp-ms", type=int, required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--self-kill-after-s",
        type=float,
        default=None,
        help="this long after ready, SIGKILL this process in the middle of a large write",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=30.0,
        help="exit on its own after this long, in case the test never kills it",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.threads <= MAX_THREADS:
        parser.error(f"--threads must be 1..{MAX_THREADS}")
    parent = os.getppid()
    deadline = time.monotonic() + args.max_seconds

    self_kill = _SelfKill()
    manager = LogManager.open(
        args.directory, fs=_KillableFileSystem(self_kill), default_config=log_config()
    )
    log = manager.create(TOPIC, PARTITION)
    out = _Out()
    out.line(f"ready {log.log_end_offset}")
    if args.self_kill_after_s is not None:
        self_kill.start(args.self_kill_after_s)
    for thread in range(args.threads):
        threading.Thread(
            target=_append_forever, args=(manager, out, self_kill, args, thread), daemon=True
        ).start()
    # Bound the run in time and stop if the test died without killing us, so that an orphan
    # never keeps filling the disk.
    while time.monotonic() < deadline:
        if os.getppid() != parent:
            os._exit(EXIT_ORPHANED)
        time.sleep(WATCHDOG_PERIOD_S)
    print("writer ran out of time without being killed", file=sys.stderr, flush=True)
    os._exit(EXIT_DEADLINE)


if __name__ == "__main__":
    sys.exit(main())
