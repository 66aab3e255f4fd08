"""The process that test_crash_sigkill.py kills: appends batches under SYNC until SIGKILLed.

Run as ``python tests/storage/crash_writer.py DIR --run-seed S --iteration I ...``. It opens the
log manager on DIR (recovering whatever the previous, killed writer left), prints
``ready <log_end>``, and then several threads append batches and wait for durability, printing
per batch::

    w <base> <last> <seed>   after append() returned: the bytes are in the page cache
    a <base> <last> <seed>   after wait_durable(last).result() returned: acknowledged

Each line goes out in one unbuffered write to stdout (a file the test reads after the kill), so a
line is either whole or, if the kill cut it, has no newline and is ignored.

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
import sys
import threading
import time
from typing import Final

from shoal.records.header import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_V2,
    BatchHeader,
    refresh_crc,
    write_header,
)
from shoal.storage import LogConfig, LogManager

TOPIC: Final = "crash"
PARTITION: Final = 0
SEGMENT_BYTES: Final = 256 * 1024
"""Small segments, so that a run of a second rolls several times and kills land near rolls."""
SEED_BYTES: Final = 8
"""The batch seed, big-endian, opens the payload: the checker reads it to rebuild the batch."""
ITERATION_SHIFT: Final = 32
THREAD_SHIFT: Final = 24
MAX_THREADS: Final = 1 << (ITERATION_SHIFT - THREAD_SHIFT)
MAX_BATCHES_PER_THREAD: Final = 1 << THREAD_SHIFT
WATCHDOG_PERIOD_S: Final = 0.1

EXIT_DEADLINE: Final = 3
EXIT_ORPHANED: Final = 4
EXIT_APPEND_FAILED: Final = 5


def log_config() -> LogConfig:
    """The config of the writer and of the test's checker: both must recover alike."""
    return LogConfig(segment_bytes=SEGMENT_BYTES)


def batch_seed(iteration: int, thread: int, counter: int) -> int:
    """A seed unique across the whole test run: (iteration, thread, counter) packed in bits."""
    return (iteration << ITERATION_SHIFT) | (thread << THREAD_SHIFT) | counter


def build_batch(run_seed: int, seed: int, timestamp_ms: int) -> bytes:
    """A valid RecordBatch v2 (correct CRC, baseOffset 0) whose every byte follows from the
    arguments: record count, payload size and payload bytes all come from a seeded RNG.

    Sizes are mostly small with a tail of large batches: large ones span many pages, so a kill
    can tear them mid-write, and they trigger segment rolls.
    """
    rng = random.Random((run_seed << 64) | seed)
    shape = rng.random()
    if shape < 0.70:
        payload_bytes = rng.randint(16, 2048)
    elif shape < 0.94:
        payload_bytes = rng.randint(2048, 16 * 1024)
    else:
        payload_bytes = rng.randint(64 * 1024, 512 * 1024)
    records = rng.randint(1, 20)
    body = seed.to_bytes(SEED_BYTES, "big") + rng.randbytes(payload_bytes)
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


def _append_forever(
    manager: LogManager, out: _Out, args: argparse.Namespace, thread: int
) -> None:
    log = manager.get(TOPIC, PARTITION)
    assert log is not None
    try:
        for counter in range(MAX_BATCHES_PER_THREAD):
            seed = batch_seed(args.iteration, thread, counter)
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

    manager = LogManager.open(args.directory, default_config=log_config())
    log = manager.create(TOPIC, PARTITION)
    out = _Out()
    out.line(f"ready {log.log_end_offset}")
    for thread in range(args.threads):
        threading.Thread(
            target=_append_forever, args=(manager, out, args, thread), daemon=True
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
