"""Every partition log in one data directory.

Layout::

    <data dir>/
        .lock                    held while a process uses the directory
        .clean-shutdown          present only after a clean close: recovery can trust indexes
        .leader-epoch-floor      the highest leader epoch ever begun (see storage.epochs)
        <topic>-<partition>/     one PartitionLog each

The manager owns what the logs share: the file-handle pool that bounds open descriptors, the
flusher (its worker threads fsync different logs at once), and the directory's health (one
failed fsync makes the whole directory read-only).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from shoal.clock import SYSTEM_CLOCK, Clock
from shoal.invariant import invariant
from shoal.storage.cleaner_thread import CleanerSettings, LogCleaner
from shoal.storage.config import LogConfig
from shoal.storage.epochs import read_epoch_floor, write_epoch_floor
from shoal.storage.errors import CorruptLogError, DiskFullError, StorageError
from shoal.storage.flush import FLUSH_THREADS, Flusher, RoundChoice
from shoal.storage.fs import FileSystem, NoSpaceForCopy, OsFileSystem
from shoal.storage.handles import FileHandles
from shoal.storage.log import DirectoryHealth, PartitionLog
from shoal.storage.stats import StorageStats

log = logging.getLogger(__name__)

LOCK_FILE: Final = ".lock"
CLEAN_SHUTDOWN_FILE: Final = ".clean-shutdown"
DELETE_SUFFIX: Final = ".deleted"
EPOCH_SAVE_THREADS: Final = 8
"""Threads saving the partitions' leader-epoch files at start (their fsyncs overlap)."""
DEFAULT_MAX_OPEN_FILES: Final = 1024
"""Sealed segment files kept open at once (active segments are extra): well under the usual
soft RLIMIT_NOFILE of 1024-65536 once sockets are counted."""


@dataclass(frozen=True, slots=True)
class LogId:
    """Which partition log: its topic and partition, and the directory it lives in.

    Not called TopicPartition: that is the client libraries' name (confluent-kafka's, the
    framework's), for the same pair seen from the outside.
    """

    topic: str
    partition: int

    @property
    def dirname(self) -> str:
        return f"{self.topic}-{self.partition}"

    @classmethod
    def from_dirname(cls, name: str) -> LogId | None:
        topic, sep, partition = name.rpartition("-")
        if not sep or not topic or not partition.isdigit():
            return None
        return cls(topic, int(partition))


class LogManager:
    """Open with :meth:`open`; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        path: str,
        *,
        fs: FileSystem,
        clock: Clock,
        default_config: LogConfig,
        max_open_files: int,
        threaded_flusher: bool = True,
        flush_threads: int = FLUSH_THREADS,
    ) -> None:
        self.path = path
        self._fs = fs
        self._clock = clock
        self.default_config = default_config
        self.health = DirectoryHealth(path)
        self._handles = FileHandles(fs, max_open_files=max_open_files)
        self._flusher = Flusher(clock, threaded=threaded_flusher, threads=flush_threads)
        self._threaded = threaded_flusher
        self.stats = StorageStats(flush=self._flusher.stats)
        """What the logs' fsyncs, retention and cleaner did (read by the broker's metrics)."""
        self._logs: dict[LogId, PartitionLog] = {}
        self._recovered: set[LogId] = set()
        """The logs found on disk at open (and those re-created with ``elect``): their leaders
        are elected again at start."""
        self.offline: dict[LogId, str] = {}
        """Partitions refused at start (damaged below their recovery point), with the reason."""
        self._clean_start = False
        self._closed = False
        self.cleaner: LogCleaner | None = None
        """The log cleaner thread, once :meth:`start_cleaner` started it."""

    @classmethod
    def open(
        cls,
        path: str,
        *,
        fs: FileSystem | None = None,
        clock: Clock = SYSTEM_CLOCK,
        default_config: LogConfig | None = None,
        config_for: Callable[[LogId], LogConfig] | None = None,
        max_open_files: int = DEFAULT_MAX_OPEN_FILES,
        threaded_flusher: bool = True,
        flush_threads: int = FLUSH_THREADS,
    ) -> LogManager:
        """Open ``path`` (created if missing) and recover every partition in it.

        With ``threaded_flusher=False`` nothing is fsynced in the background: appends wait
        until the caller runs :meth:`flush_pending` (a seam for the deterministic simulation,
        which decides when the disk syncs). ``flush_threads`` bounds the logs fsynced at once.
        """
        fs = OsFileSystem() if fs is None else fs
        fs.makedirs(path)
        fs.lock(os.path.join(path, LOCK_FILE))
        manager = cls(
            path,
            fs=fs,
            clock=clock,
            default_config=default_config or LogConfig(),
            max_open_files=max_open_files,
            threaded_flusher=threaded_flusher,
            flush_threads=flush_threads,
        )
        try:
            manager._load(config_for)
        except BaseException:
            manager._flusher.stop()
            manager._handles.close_all()
            fs.unlock(os.path.join(path, LOCK_FILE))
            raise
        return manager

    def _load(self, config_for: Callable[[LogId], LogConfig] | None) -> None:
        marker = os.path.join(self.path, CLEAN_SHUTDOWN_FILE)
        self._clean_start = self._fs.exists(marker)
        for name in sorted(self._fs.listdir(self.path)):
            full = os.path.join(self.path, name)
            if name.endswith(DELETE_SUFFIX):
                self._fs.rmtree(full)  # a deletion interrupted by a crash
                continue
            tp = LogId.from_dirname(name)
            if tp is None:
                continue
            config = config_for(tp) if config_for is not None else self.default_config
            try:
                self._logs[tp] = self._open_log(full, config, clean=self._clean_start)
                self._recovered.add(tp)
            except CorruptLogError as exc:
                log.critical("partition %s is offline: %s", name, exc)
                self.offline[tp] = str(exc)
        if self._clean_start:
            # From here on a crash must be detected as unclean.
            self._fs.remove(marker)
            self._fs.fsync_dir(self.path)

    def _open_log(self, directory: str, config: LogConfig, *, clean: bool) -> PartitionLog:
        return PartitionLog.open(
            self._fs,
            directory,
            config,
            clock=self._clock,
            handles=self._handles,
            health=self.health,
            flusher=self._flusher,
            clean_shutdown=clean,
        )

    def begin_leader_epochs(self) -> None:
        """A broker start: every partition found on disk has its leader elected again, under a
        new leader epoch (Kafka's controller does this when a restarted broker rejoins); one
        created during this start keeps epoch 0. Clients that read
        records a crash erased then find the truncation (KIP-320) instead of skipping what was
        written at those offsets since. Each log saves its history before this returns."""
        logs = [
            plog
            for tp in sorted(self._recovered, key=lambda t: (t.topic, t.partition))
            if (plog := self._logs.get(tp)) is not None
        ]
        self._recovered.clear()  # once per start
        if not logs:
            return
        # The broker-wide floor first: once it is durable, no partition's epoch can go back
        # to a number already used, even if its own file is then lost.
        floor = read_epoch_floor(self._fs, self.path)
        highest = max(floor, *(plog.highest_epoch for plog in logs)) + 1
        try:
            write_epoch_floor(self._fs, self.path, highest)
        except NoSpaceForCopy as exc:
            raise DiskFullError(f"could not save the leader epoch floor: {exc}") from exc
        except OSError as exc:
            raise self.health.fail(f"could not save the leader epoch floor: {exc}") from exc
        if not self._threaded or len(logs) < 2:
            for plog in logs:  # the deterministic simulation: one thread, in order
                plog.begin_leader_epoch(floor)
            return
        # Each save is two fsyncs (file, directory): overlapped, the disk commits them together
        # (a start with thousands of partitions would otherwise wait for each in turn).
        with ThreadPoolExecutor(EPOCH_SAVE_THREADS, thread_name_prefix="shoal-epochs") as pool:
            for future in [pool.submit(plog.begin_leader_epoch, floor) for plog in logs]:
                future.result()  # the first failure is raised, after every save has ended

    def start_cleaner(
        self,
        settings: CleanerSettings | None = None,
        *,
        separate_process: bool = False,
    ) -> LogCleaner:
        """Start compacting the logs whose config says ``compact``, on a thread of its own;
        with ``separate_process`` (the broker's choice) the records are decoded and rewritten
        in a process of its own (:mod:`shoal.storage.cleaner_process`), which reads and writes
        the real files, so it needs the real file system."""
        invariant(self.cleaner is None, "the cleaner is already running")
        invariant(
            not separate_process or type(self._fs) is OsFileSystem,
            "the cleaner's process works on the real file system only",
        )
        self.cleaner = LogCleaner(
            lambda: list(self._logs.values()),
            self._clock,
            settings or CleanerSettings(),
            separate_process=separate_process,
        )
        self.cleaner.start()
        return self.cleaner

    def _stop_cleaner(self) -> None:
        if self.cleaner is not None:
            self.cleaner.stop()

    def flush_pending(self, choose: RoundChoice | None = None) -> None:
        """One round of the flusher's work, on the caller's thread (see ``threaded_flusher``);
        ``choose`` picks the logs whose work finishes in it, and their order."""
        self._flusher.run_pending(choose)

    @property
    def recovered_cleanly(self) -> bool:
        """True when the previous process shut down cleanly (no recovery scan was needed)."""
        return self._clean_start

    @property
    def open_file_count(self) -> int:
        return self._handles.open_count

    def partitions(self) -> dict[LogId, PartitionLog]:
        return dict(self._logs)

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get(LogId(topic, partition))

    def create(
        self,
        topic: str,
        partition: int,
        config: LogConfig | None = None,
        *,
        elect: bool = False,
    ) -> PartitionLog:
        """Create the log of a new partition (an existing one is returned as is).

        ``elect``: the metadata names this partition but its log was missing at start (lost,
        or a crash mid-create); the coming :meth:`begin_leader_epochs` gives it the start's
        epoch like the logs found on disk, not epoch 0, which clients may have seen before.
        """
        invariant(not self._closed, "manager is closed")
        tp = LogId(topic, partition)
        existing = self._logs.get(tp)
        if existing is not None:
            return existing
        if tp in self.offline:
            raise CorruptLogError(self.offline[tp])
        self.health.check()
        directory = os.path.join(self.path, tp.dirname)
        try:
            plog = self._open_log(directory, config or self.default_config, clean=False)
            self._fs.fsync_dir(self.path)
        except OSError as exc:
            raise self.health.fail(f"could not create {directory}: {exc}") from exc
        self._logs[tp] = plog
        if elect:
            self._recovered.add(tp)
        return plog

    def delete(self, topic: str, partition: int) -> None:
        """Remove a partition's log and files. A crash midway leaves no half-deleted log.

        A failed directory refuses (it is read-only): DeleteTopics once removed the data there
        and then failed to save topics.json, leaving a listed topic without its logs."""
        self.health.check()
        tp = LogId(topic, partition)
        plog = self._logs.pop(tp, None)
        self.offline.pop(tp, None)
        directory = os.path.join(self.path, tp.dirname)
        if plog is not None:
            plog.close()
        if not self._fs.exists(directory):
            return
        doomed = f"{directory}.{self._clock.now_ms()}{DELETE_SUFFIX}"
        self._fs.rename(directory, doomed)
        self._fs.fsync_dir(self.path)
        self._fs.rmtree(doomed)

    def apply_retention(self) -> int:
        """Run retention on every log; returns the number of segments deleted."""
        deleted = 0
        now = self._clock.now_ms()
        started_s = time.perf_counter()
        for plog in list(self._logs.values()):
            try:
                deleted += plog.apply_retention(now)
            except StorageError as exc:
                log.error("retention of %s failed: %s", plog.name, exc)
        retention = self.stats.retention
        retention.runs += 1
        retention.segments_deleted += deleted
        retention.duration_s += time.perf_counter() - started_s
        return deleted

    def close(self) -> None:
        """Flush and checkpoint everything, then mark the directory cleanly shut down."""
        if self._closed:
            return
        self._closed = True
        self._stop_cleaner()  # a clean cut short leaves each log as it was
        failures = []
        for plog in self._logs.values():
            try:
                plog.close()
            except StorageError as exc:
                failures.append(exc)
        self._flusher.stop()
        self._handles.close_all()
        if not failures and self.health.failure is None and not self.offline:
            marker = os.path.join(self.path, CLEAN_SHUTDOWN_FILE)
            f = self._fs.open(marker, create=True)
            f.close()
            self._fs.fsync_dir(self.path)
        self._fs.unlock(os.path.join(self.path, LOCK_FILE))

    def abandon(self) -> None:
        """Stop using the directory without flushing or checkpointing, as a crash would.

        For crash tests and for embedders simulating one; data not yet fsynced is at the mercy
        of the filesystem, exactly as after ``kill -9``.
        """
        self._closed = True
        self._stop_cleaner()
        self._flusher.stop()
        self._handles.close_all()
        self._fs.unlock(os.path.join(self.path, LOCK_FILE))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
