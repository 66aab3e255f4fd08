"""A log manager on the fault-injecting filesystem with a fake clock, for the storage tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.storage import LogConfig, LogManager, PartitionLog
from shoal.testing.clock import FakeClock
from shoal.testing.faultfs import FaultyFileSystem
from tests.storage.batches import payload_of

DATA = "/data"


@dataclass
class Harness:
    """A log manager on the fault-injecting filesystem, with a fake clock."""

    fs: FaultyFileSystem = field(default_factory=FaultyFileSystem)
    clock: FakeClock = field(default_factory=FakeClock)
    config: LogConfig = field(
        # Checkpoints only when a test asks (or on roll/close/open): the fake monotonic clock
        # does not move by itself, so a huge interval keeps the recovery point where tests put it.
        default_factory=lambda: LogConfig(checkpoint_interval_ms=10**12)
    )
    manager: LogManager | None = None

    def open(self) -> LogManager:
        self.manager = LogManager.open(
            DATA, fs=self.fs, clock=self.clock, default_config=self.config
        )
        return self.manager

    def log(self) -> PartitionLog:
        assert self.manager is not None
        plog = self.manager.get("t", 0)
        return plog if plog is not None else self.manager.create("t", 0)

    def crash(self, *, keep_unsynced: bool = False) -> None:
        assert self.manager is not None
        self.manager.abandon()
        self.fs.crash(keep_unsynced=keep_unsynced)
        self.manager = None

    def abandon(self) -> None:
        """A process crash: the page cache (our in-memory files) survives."""
        assert self.manager is not None
        self.manager.abandon()
        self.manager = None

    def close(self) -> None:
        if self.manager is not None:
            self.manager.close()
            self.manager = None


def read_all(h: Harness) -> list[bytes]:
    """Every stored batch (without baseOffset), read through the log from its start."""
    plog = h.log()
    out, offset = [], plog.log_start_offset
    while offset < plog.log_end_offset:
        result = plog.read(offset, 1 << 20)
        data = memoryview(result.data)
        position = 0
        while position < len(data):
            size = int.from_bytes(data[position + 8 : position + 12], "big") + 12
            out.append(payload_of(bytes(data[position : position + size])))
            position += size
        offset = result.next_offset
    return out
