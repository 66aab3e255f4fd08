"""The log of one partition: ordered segments, appends, reads, recovery, retention, durability.

Threading: appends, reads and retention run on the caller's thread (the broker's event loop);
a :class:`~shoal.storage.flush.Flusher` worker thread fsyncs (one at a time per log; other logs
meanwhile on other workers). ``_lock`` guards the in-memory state and is held only briefly by
the flusher; ``_flush_lock`` serialises flushes with the operations that delete files. Lock
order: ``_flush_lock`` before ``_lock``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from bisect import bisect_right
from collections import deque
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shoal.buffers import Buffer
from shoal.clock import Clock
from shoal.invariant import invariant
from shoal.records.header import BatchHeader, read_header
from shoal.storage.checkpoint import Checkpoint, write_checkpoint
from shoal.storage.config import FlushPolicy, LogConfig
from shoal.storage.epochs import LeaderEpochCache, read_epoch_file, write_epoch_file
from shoal.storage.errors import (
    DiskFullError,
    LogClosedError,
    LogDirectoryFailedError,
    OffsetOutOfRangeError,
    StorageError,
)
from shoal.storage.fs import SPACE_ERRNOS, FileSystem, NoSpaceForCopy
from shoal.storage.handles import FileHandles
from shoal.storage.index import MAX_RELATIVE
from shoal.storage.journals import Journals, read_journal
from shoal.storage.recovery import recover_segments, remove_segment_files
from shoal.storage.segment import Segment, SegmentRead

CLEANER_CHECKPOINT_FILE = "cleaner-offset-checkpoint"
"""Side file of the cleaner: where the next clean starts (Kafka's cleaner-offset-checkpoint,
kept per partition). Its presence also says the log may have offset gaps."""


def cleaner_checkpoint_path(plog: PartitionLog) -> str:
    return os.path.join(plog.directory, CLEANER_CHECKPOINT_FILE)


def _retention_time_ms(segment: Segment) -> int:
    """The time a sealed segment ages from for retention.ms: its newest record's timestamp.

    A segment the cleaner emptied has none; Kafka then uses the file's modification time (when
    the cleaner wrote it), and so does this, as the segment's creation time. Without it such a
    segment would never expire and would hold back time retention of a compact,delete topic.
    """
    if segment.size == 0 and segment.max_timestamp < 0:
        return segment.created_ms
    return segment.max_timestamp


if TYPE_CHECKING:
    from collections.abc import Iterator

    from shoal.storage.flush import Flusher
    from shoal.storage.timesearch import FoundRecord

log = logging.getLogger(__name__)


class DirectoryHealth:
    """Shared by every log in one directory: once an I/O error makes it untrustworthy, every
    log in it refuses writes until the process restarts."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.failure: str | None = None
        self._lock = threading.Lock()
        """The flusher's workers may fail at once: the first reason is kept and logged once."""

    def fail(self, reason: str) -> LogDirectoryFailedError:
        with self._lock:
            first = self.failure is None
            if first:
                self.failure = reason
        if first:
            log.critical("log directory %s is now read-only: %s", self.path, reason)
        return LogDirectoryFailedError(self._message())

    def check(self) -> None:
        if self.failure is not None:
            raise LogDirectoryFailedError(self._message())

    def _message(self) -> str:
        return (
            f"log directory {self.path} failed ({self.failure}) and is read-only; "
            "fix the disk and restart the broker"
        )


@dataclass(frozen=True, slots=True)
class AppendInfo:
    base_offset: int
    last_offset: int
    append_time_ms: int
    log_start_offset: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    data: bytes | bytearray
    """Whole batches, as stored (empty when there is nothing to read)."""
    first_offset: int
    next_offset: int
    log_start_offset: int
    log_end_offset: int


class PartitionLog:
    """The log of one partition; create with :meth:`open`."""

    def __init__(
        self,
        fs: FileSystem,
        directory: str,
        config: LogConfig,
        *,
        clock: Clock,
        handles: FileHandles,
        health: DirectoryHealth,
        flusher: Flusher | None,
    ) -> None:
        self.directory = directory
        self.name = os.path.basename(directory)
        self._fs = fs
        self._config = config
        self._clock = clock
        self._handles = handles
        self._health = health
        self._flusher = flusher
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self._unsealed: list[Segment] = []
        """Rolled segments whose data and indexes the flusher has not yet made durable."""
        self._log_start = 0
        self._flushed_offset = 0
        """Every offset below this is fsynced (the in-memory recovery point)."""
        self._saved_recovery_point = 0
        self._saved_log_start = 0
        """The log start in the checkpoint on disk (DeleteRecords answers only a saved one)."""
        self._last_checkpoint_ms = 0.0
        self._last_flush_ms = 0.0
        self.flush_count = 0
        """Flushes that fsynced something: appends per flush show how well group commit works."""
        # Metrics (issue 17): batches appended, and how many of them the flushes covered.
        self.appended_batches = 0
        self._flushed_batches = 0
        self._waiters: deque[tuple[int, Future[None]]] = deque()
        self._closed = False
        self._journals = Journals(fs, directory, handles)
        """Side journals appended to by this process (see :mod:`shoal.storage.journals`)."""
        self._epochs = LeaderEpochCache()
        self._leader_epoch = 0
        """The current epoch (the latest of ``_epochs``), stamped into every appended batch."""
        self._highest_epoch = -1
        """The highest epoch the history ever held (its latest before recovery cut it)."""

    # -- opening and recovery -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        fs: FileSystem,
        directory: str,
        config: LogConfig,
        *,
        clock: Clock,
        handles: FileHandles,
        health: DirectoryHealth,
        flusher: Flusher | None = None,
        clean_shutdown: bool = False,
    ) -> PartitionLog:
        """Open (creating if needed) the log in ``directory``, recovering it after a crash.

        Its leader-epoch history is loaded and cut to the recovered log, but neither extended
        nor saved: :meth:`begin_leader_epoch` does that when the broker starts serving (so a
        start refused later, e.g. for a document from a newer format, changes no file).

        Raises :class:`CorruptLogError` when data below the recovery point is damaged; the files
        are then left exactly as found.
        """
        fs.makedirs(directory)
        plog = cls(
            fs,
            directory,
            config,
            clock=clock,
            handles=handles,
            health=health,
            flusher=flusher,
        )
        plog._recover(clean_shutdown)
        plog._load_epochs()
        if flusher is not None:
            flusher.register(plog)
        return plog

    def _recover(self, clean_shutdown: bool) -> None:
        recovered = recover_segments(
            self._fs,
            self.directory,
            self._handles,
            self._config,
            now_ms=self._clock.now_ms,
            clean_shutdown=clean_shutdown,
            allow_gaps=self._config.compact or self._fs.exists(cleaner_checkpoint_path(self)),
        )
        checkpoint = recovered.checkpoint
        segments = recovered.segments
        if segments and checkpoint is not None:
            segments = self._drop_segments_below_saved_start(segments, checkpoint)
        if not segments:
            start = checkpoint.log_start_offset if checkpoint is not None else 0
            self._install([self._new_segment(start)])  # created pinned
            self._log_start = start
            self._flushed_offset = start
            self._write_checkpoint()
            return
        self._install(segments)
        first = recovered.segments[0].base_offset
        start = checkpoint.log_start_offset if checkpoint is not None else first
        self._log_start = min(max(start, first), self._next_offset)
        active = self._segments[-1]
        active.created_ms = self._created_ms_of(active)
        self._handles.pin(active.path)
        # What survived a process crash may still sit in the page cache: make every segment
        # that was re-checked durable before the new recovery point claims it.
        try:
            for segment in recovered.rebuilt:
                with self._handles.using(segment.path) as f:
                    f.fsync()
        except OSError as exc:
            # Found by tests/simulation: this EIO left LogManager.open as a bare OSError.
            raise self._health.fail(f"fsync of recovered {self.name} failed: {exc}") from exc
        self._flushed_offset = self._next_offset
        self._write_checkpoint()
        self._delete_segments_below_start()

    def _drop_segments_below_saved_start(
        self, segments: list[Segment], checkpoint: Checkpoint
    ) -> list[Segment]:
        """The segments to open: none if the log ends below the log start it saved.

        That start was answered (DeleteRecords, retention) after the records below it were
        durable, so only files damaged or cut behind shoal's back leave the log ending below
        it. Moving the start down to the log end would hand out offsets below an answered
        start again; as Kafka's LogLoader does, every segment goes and the log starts empty at
        the saved start.
        """
        end = segments[-1].next_offset
        if end >= checkpoint.log_start_offset:
            return segments
        log.warning(
            "%s ends at offset %d, below its saved log start %d (segment files damaged or "
            "cut?): deleting its %d segments; it starts again, empty, at %d",
            self.name,
            end,
            checkpoint.log_start_offset,
            len(segments),
            checkpoint.log_start_offset,
        )
        for segment in segments:
            remove_segment_files(self._fs, self._handles, segment)
        try:
            self._fs.fsync_dir(self.directory)
        except OSError as exc:
            raise self._health.fail(f"fsync of {self.directory} failed: {exc}") from exc
        return []

    def _load_epochs(self) -> None:
        """Load the epoch history (in memory) and cut it to the recovered log."""
        cache = read_epoch_file(self._fs, self.directory)
        first_epoch_start = self._log_start
        if cache is None:
            last_batch_epoch = self._last_batch_epoch()
            if last_batch_epoch > 0:
                cache = self._epochs_from_batches()  # the file was lost: rebuild it
            else:
                # No file and the last batch carries epoch 0: a partition created at runtime
                # (it saves no file until its next start), whose history is epoch 0 from the
                # start, without reading every batch header. Or the last batch carries none
                # (-1), and so does every batch before it (an epoch, once stamped, stays):
                # a log from before epochs. As in Kafka, whose history holds only epochs
                # stamped in batches, its first epoch begins where the next batch goes, so
                # no epoch covers the old records (ListOffsets earliest answers -1 for them).
                cache = LeaderEpochCache()
                if last_batch_epoch < 0:
                    first_epoch_start = self._next_offset
        # An epoch number is never used twice, even once the records it held are gone: a
        # client that read them must see the next start's epoch as a change.
        self._highest_epoch = cache.latest_epoch
        cache.truncate_from_end(self._next_offset)  # epochs whose records a crash erased
        cache.truncate_from_start(self._log_start)
        if cache.latest_epoch < 0:  # a new partition, or one from before epochs
            cache.assign(0, first_epoch_start)
        self._epochs = cache
        self._leader_epoch = cache.latest_epoch

    @property
    def highest_epoch(self) -> int:
        """The highest epoch this partition's history ever held (before recovery cut it)."""
        with self._lock:
            return max(self._highest_epoch, self._epochs.latest_epoch)

    def begin_leader_epoch(self, floor: int = -1) -> int:
        """The partition's leader is elected again (a broker start): a new leader epoch,
        above every one it ever held and above ``floor`` (the broker's highest ever begun),
        begins at the log end. Saved durably before it returns, so no batch is ever stamped
        with an epoch the file lacks; returns the new epoch."""
        with self._flush_lock:
            self._check_writable()
            with self._lock:
                epoch = max(self._highest_epoch, self._epochs.latest_epoch, floor) + 1
                self._epochs.assign(epoch, self._next_offset)
                self._highest_epoch = epoch
                self._leader_epoch = self._epochs.latest_epoch
            self._save_epochs()
            return self._leader_epoch

    def _save_epochs(self) -> None:
        with self._lock:
            cache = LeaderEpochCache(self._epochs.entries())
        with self._file_write_errors("could not save the leader epochs"):
            write_epoch_file(self._fs, self.directory, cache)

    @contextmanager
    def _file_write_errors(self, doing: str) -> Iterator[None]:
        """How a failed atomic file write (temp file, fsync, rename) surfaces: without space
        the old file is whole and still true, so DiskFullError (wait for space, try again);
        any other I/O error fails the directory. ``doing`` begins the message."""
        try:
            yield
        except NoSpaceForCopy as exc:
            raise DiskFullError(f"{doing} of {self.name}: {exc}") from exc
        except OSError as exc:
            raise self._health.fail(f"{doing} of {self.name}: {exc}") from exc

    def _last_batch_epoch(self) -> int:
        """The epoch stamped in the last batch (-1 if the log is empty): reads only the
        headers of the log's last index interval."""
        epoch = -1
        for header in self.headers_from(self.offset_before_end(1)):
            epoch = header.partition_leader_epoch
        return epoch

    def _epochs_from_batches(self) -> LeaderEpochCache:
        """The history as stamped in the batches (Kafka's rebuild): for a missing or damaged
        file. Batches written before shoal kept epochs carry -1 and add nothing."""
        cache = LeaderEpochCache()
        for header in self.headers_from(self._log_start):
            if header.partition_leader_epoch >= 0:
                cache.assign(header.partition_leader_epoch, header.base_offset)
        return cache

    def _created_ms_of(self, segment: Segment) -> int:
        first = segment.first_batch_timestamp()
        return first if first >= 0 else self._clock.now_ms()

    def _install(self, segments: list[Segment]) -> None:
        self._segments = segments
        self._bases = [s.base_offset for s in segments]

    # -- properties -----------------------------------------------------------------------

    @property
    def config(self) -> LogConfig:
        return self._config

    @property
    def _next_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def log_start_offset(self) -> int:
        return self._log_start

    @property
    def log_end_offset(self) -> int:
        """The offset the next append gets (Kafka's log end offset; the high watermark here)."""
        return self._next_offset

    @property
    def leader_epoch(self) -> int:
        """The partition's current leader epoch."""
        return self._leader_epoch

    def epoch_entries(self) -> list[tuple[int, int]]:
        """The epoch history, ``(epoch, start offset)`` oldest first."""
        with self._lock:
            return self._epochs.entries()

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """``(epoch, end offset)`` as Kafka's leader-epoch cache answers (OffsetForLeaderEpoch)."""
        with self._lock:
            return self._epochs.end_offset_for(epoch, self._next_offset)

    def epoch_of_offset(self, offset: int) -> int:
        """The leader epoch the record at ``offset`` was written in (-1 before every epoch)."""
        with self._lock:
            return self._epochs.epoch_for(offset)

    def first_epoch(self) -> int:
        """The epoch of the log start offset, or -1 when the history does not reach it."""
        with self._lock:
            entries = self._epochs.entries()
            if entries and entries[0][1] <= self._log_start:
                return entries[0][0]
            return -1

    @property
    def flushed_offset(self) -> int:
        """Offsets below this are durable."""
        return self._flushed_offset

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def update_config(self, config: LogConfig) -> None:
        with self._lock:
            self._config = config

    # -- appending ------------------------------------------------------------------------

    def append(self, batch: Buffer, header: BatchHeader | None = None) -> AppendInfo:
        """Append one validated batch, giving it the next offsets; returns where it went.

        Only the batch's baseOffset is rewritten (it lies outside the CRC). The append is
        durable when :meth:`wait_durable` for its last offset completes.
        """
        view = memoryview(batch)
        if header is None:
            header = read_header(view)
        invariant(header.size == view.nbytes, "append takes exactly one whole batch")
        with self._lock:
            self._check_writable()
            now_ms = self._clock.now_ms()
            base = self._next_offset
            self._maybe_roll(view.nbytes, header.last_offset_delta, now_ms)
            segment = self._segments[-1]
            size_before = segment.size
            try:
                segment.append(base, view, header, self._leader_epoch)
            except OSError as exc:
                raise self._failed_write(segment, size_before, exc) from exc
            self.appended_batches += 1
            info = AppendInfo(base, base + header.last_offset_delta, now_ms, self._log_start)
        if self._flusher is not None and self._config.flush_policy is FlushPolicy.INTERVAL:
            self._flusher.mark_dirty(self)
        return info

    def _failed_write(self, segment: Segment, size_before: int, exc: OSError) -> StorageError:
        try:
            segment.rollback(size_before)
        except OSError as undo_exc:
            return self._health.fail(f"could not undo a failed write to {segment.path}: {undo_exc}")
        if exc.errno in SPACE_ERRNOS:
            return DiskFullError(
                f"{self.name}: no space left on the device of {self.directory}; nothing was "
                "written. Free space or lower retention, then retry."
            )
        return self._health.fail(f"write to {segment.path} failed: {exc}")

    def _maybe_roll(self, batch_bytes: int, last_offset_delta: int, now_ms: int) -> None:
        active = self._segments[-1]
        if active.size == 0:
            return
        full = active.size + batch_bytes > self._config.segment_bytes
        old = now_ms - active.created_ms >= self._config.roll_ms
        offsets_exhausted = (
            self._next_offset + last_offset_delta - active.base_offset > MAX_RELATIVE
        )
        if full or old or offsets_exhausted:
            self._roll_locked(now_ms)

    def _roll_locked(self, now_ms: int) -> None:
        old = self._segments[-1]
        try:
            segment = self._new_segment(self._next_offset, now_ms)
        except OSError as exc:
            if exc.errno in SPACE_ERRNOS:
                raise DiskFullError(f"{self.name}: no space for a new segment") from exc
            raise self._health.fail(
                f"could not create a segment in {self.directory}: {exc}"
            ) from exc
        self._segments.append(segment)
        self._bases.append(segment.base_offset)
        self._unsealed.append(old)  # the flusher fsyncs it, saves its indexes and unpins it
        if self._flusher is not None:
            self._flusher.request(self)

    def _new_segment(self, base_offset: int, now_ms: int | None = None) -> Segment:
        segment = Segment.create(
            self._fs,
            self.directory,
            base_offset,
            self._handles,
            index_interval_bytes=self._config.index_interval_bytes,
            now_ms=self._clock.now_ms() if now_ms is None else now_ms,
        )
        # The directory entry must be durable before any acknowledged byte lives in the file.
        self._fs.fsync_dir(self.directory)
        return segment

    def roll(self) -> None:
        """Start a new segment now (if the active one has data)."""
        with self._lock:
            self._check_writable()
            if self._segments[-1].size:
                self._roll_locked(self._clock.now_ms())

    def _check_writable(self) -> None:
        if self._closed:
            raise LogClosedError(f"{self.name} is closed")
        self._health.check()

    # -- durability -----------------------------------------------------------------------

    def wait_durable(self, offset: int) -> Future[None]:
        """A future that completes once ``offset`` is fsynced (under the SYNC policy), at once
        otherwise; it fails with :class:`LogDirectoryFailedError` if the fsync fails."""
        future: Future[None] = Future()
        if self._config.flush_policy is not FlushPolicy.SYNC:
            future.set_result(None)
            return future
        with self._lock:
            if offset < self._flushed_offset:
                future.set_result(None)
                return future
            try:
                self._check_writable()
            except StorageError as exc:
                future.set_exception(exc)
                return future
            self._waiters.append((offset, future))
        if self._flusher is None:
            self.flush()
        else:
            self._flusher.request(self)
        return future

    def flush(self) -> None:
        """fsync everything appended so far, seal rolled segments, and release the waiters."""
        with self._flush_lock:
            with self._lock:
                if self._closed:
                    return
                target = self._next_offset
                active = self._segments[-1]
                to_seal = list(self._unsealed)
                if target <= self._flushed_offset and not to_seal:
                    return
                appended = self.appended_batches
            started_s = time.perf_counter()
            try:
                for segment in to_seal:
                    with self._handles.using(segment.path) as f:
                        f.fsync()
                    segment.save_indexes(self._fs)
                with self._handles.using(active.path) as f:
                    f.fsync()
            except OSError as exc:
                failure = self._health.fail(f"fsync in {self.directory} failed: {exc}")
                self._fail_waiters(failure)
                raise failure from exc
            with self._lock:
                self._flushed_offset = max(self._flushed_offset, target)
                self._last_flush_ms = self._clock.monotonic_ms()
                self.flush_count += 1
                if self._flusher is not None:
                    self._flusher.stats.observe(
                        time.perf_counter() - started_s, appended - self._flushed_batches
                    )
                self._flushed_batches = appended
                for segment in to_seal:
                    self._unsealed.remove(segment)
                    segment.release_active_file()
                    self._handles.unpin(segment.path)
                released = []
                while self._waiters and self._waiters[0][0] < self._flushed_offset:
                    released.append(self._waiters.popleft()[1])
        for future in released:
            # A waiter may have given up (a Produce timed out and cancelled it): skip it, as
            # completing a cancelled future raises and would kill the flusher's worker.
            if future.set_running_or_notify_cancel():
                future.set_result(None)
        if to_seal:
            self.checkpoint()

    def fail_after_bug(self, exc: Exception) -> None:
        """A bug (not a storage error) broke off this log's flush, leaving its state unknown:
        the directory fails as for an I/O error, and the appends waiting for durability get
        that failure instead of waiting for a flush that may never come."""
        failure = self._health.fail(f"flush of {self.name} failed unexpectedly: {exc!r}")
        self._fail_waiters(failure)

    def _fail_waiters(self, error: Exception) -> None:
        with self._lock:
            waiters = [f for _, f in self._waiters]
            self._waiters.clear()
        for future in waiters:
            if future.set_running_or_notify_cancel():
                future.set_exception(error)

    def periodic(self, now_monotonic_ms: float) -> bool:
        """Flush (INTERVAL policy) and save the checkpoint when due; True if work remains."""
        config = self._config
        if (
            config.flush_policy is FlushPolicy.INTERVAL
            and now_monotonic_ms - self._last_flush_ms >= config.flush_interval_ms
        ):
            self.flush()
        if self._flushed_offset > self._saved_recovery_point:
            if now_monotonic_ms - self._last_checkpoint_ms >= config.checkpoint_interval_ms:
                self.checkpoint()
            else:
                return True
        return (
            config.flush_policy is FlushPolicy.INTERVAL and self._flushed_offset < self._next_offset
        )

    def checkpoint(self) -> None:
        """Save the recovery point (what is fsynced) and the log start offset."""
        with self._flush_lock:
            if not self._closed:
                self._write_checkpoint()

    def _write_checkpoint(self, *, log_start: int | None = None) -> None:
        with self._lock:
            start = self._log_start if log_start is None else max(log_start, self._log_start)
            checkpoint = Checkpoint(self._flushed_offset, start)
        # Without space the old checkpoint is whole and still true (an older recovery point
        # only means a longer scan after a crash): the next flush tries again.
        with self._file_write_errors("could not write the checkpoint"):
            write_checkpoint(self._fs, self.directory, checkpoint)
        self._saved_recovery_point = checkpoint.recovery_point
        self._saved_log_start = checkpoint.log_start_offset
        self._last_checkpoint_ms = self._clock.monotonic_ms()

    # -- reading --------------------------------------------------------------------------

    def read(
        self,
        offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        cached_only: bool = False,
    ) -> ReadResult:
        """Whole batches starting with the one that holds ``offset``.

        Returns about ``max_bytes`` (at least one batch, even a larger one) from one segment,
        none at or past ``max_offset``. Raises :class:`OffsetOutOfRangeError` outside
        ``[log_start_offset, log_end_offset]``. With ``cached_only`` it never waits for the
        disk: it raises :class:`ReadWouldWait` where it would (the event loop reads this way).
        """
        with self._lock:
            if self._closed:
                raise LogClosedError(f"{self.name} is closed")
            start, end = self._log_start, self._next_offset
            if not start <= offset <= end:
                raise OffsetOutOfRangeError(
                    f"{self.name}: offset {offset} is outside the log [{start}, {end}]"
                )
            limit = end if max_offset is None else min(max_offset, end)
            i = max(0, bisect_right(self._bases, offset) - 1)
            found: SegmentRead | None = None
            while found is None and i < len(self._segments) and offset < limit:
                found = self._segments[i].read(offset, max_bytes, limit, cached_only=cached_only)
                i += 1
        if found is None:
            return ReadResult(b"", offset, offset, start, end)
        return ReadResult(found.data, found.first_offset, found.next_offset, start, end)

    def offset_for_timestamp(self, timestamp: int) -> FoundRecord | None:
        """The first record whose timestamp is at or after ``timestamp`` (offset, timestamp,
        its batch's leader epoch), or None if there is none (Kafka's ListOffsets by time)."""
        from shoal.storage.timesearch import find_first_at_or_after

        with self._lock:
            for segment in self._segments:
                if segment.max_timestamp < timestamp or segment.next_offset <= self._log_start:
                    continue
                found = find_first_at_or_after(segment, timestamp, self._log_start)
                if found is not None:
                    return found
        return None

    def max_timestamp(self) -> FoundRecord | None:
        """The record with the largest timestamp (ListOffsets -3)."""
        from shoal.storage.timesearch import find_max_timestamp

        with self._lock:
            best = max(
                (s for s in self._segments if s.size and s.next_offset > self._log_start),
                key=lambda s: s.max_timestamp,
                default=None,
            )
            return None if best is None else find_max_timestamp(best, self._log_start)

    # -- header walks and side files (generic services for the layers above) --------------

    def headers_from(self, offset: int) -> Iterator[BatchHeader]:
        """Headers of the batches from the one holding ``offset`` (or the log start, if later)
        up to the log end as of this call, in offset order, reading no record bytes.

        Raises :class:`LogClosedError` if the log is closed and :class:`StorageError` if a
        segment cannot be read (e.g. retention deleted it during the walk).
        """
        from shoal.storage.sidefiles import walk_headers

        with self._lock:
            if self._closed:
                raise LogClosedError(f"{self.name} is closed")
            start, end = max(offset, self._log_start), self._next_offset
            first = max(0, bisect_right(self._bases, start) - 1)
            segments = self._segments[first:]
        return walk_headers(self.name, segments, start, end)

    def offset_before_end(self, bytes_back: int) -> int:
        """The base offset of a batch that starts at least ``bytes_back`` bytes before the log
        end (at most one index interval more), or the log start offset if the log is smaller:
        where a walk of about the last ``bytes_back`` bytes begins."""
        with self._lock:
            remaining = bytes_back
            for segment in reversed(self._segments):
                if segment.size >= remaining:
                    offset, _position = segment.index.floor_by_position(segment.size - remaining)
                    return max(offset, self._log_start)
                remaining -= segment.size
            return self._log_start

    def read_side_file(self, name: str) -> bytes | None:
        """The payload of side file ``name`` (see :mod:`shoal.storage.sidefiles`), or None
        when there is none or it is damaged."""
        from shoal.storage.sidefiles import read_side_file

        return read_side_file(self._fs, self.directory, name)

    def write_side_file(self, name: str, payload: bytes) -> None:
        """Durably replace side file ``name`` with ``payload``; safe from any thread.

        Raises :class:`LogClosedError` once the log is closed (so a late writer cannot race a
        partition's deletion), :class:`DiskFullError` without space, and fails the directory on
        other I/O errors, as for the checkpoint.
        """
        from shoal.storage.sidefiles import write_side_file

        with self._flush_lock:
            self._check_writable()
            with self._file_write_errors(f"could not write {name}"):
                write_side_file(self._fs, self.directory, name, payload)

    def read_side_journal(self, name: str) -> bytes | None:
        """The newest whole version in side journal ``name`` (see
        :mod:`shoal.storage.journals`), or None when there is none."""
        try:
            return read_journal(self._fs, self.directory, name)
        except OSError as exc:
            raise StorageError(f"could not read side journal {name} of {self.name}: {exc}") from exc

    def append_side_journal(self, name: str, payload: bytes) -> None:
        """Make ``payload`` the newest version of side journal ``name``, durably: one append
        and one fsync (a rewrite now and then); safe from any thread. Errors as
        :meth:`write_side_file`."""
        with self._flush_lock:
            self._check_writable()
            try:
                self._journals.append(name, payload)  # DiskFullError without space
            except OSError as exc:
                raise self._health.fail(f"could not write {name} of {self.name}: {exc}") from exc

    # -- deleting data --------------------------------------------------------------------

    def delete_records(self, before_offset: int) -> int:
        """Make ``before_offset`` the new log start (Kafka DeleteRecords); returns it.

        The new start is saved durably before this returns; whole segments below it go.
        The records below it are fsynced first: else a power loss could erase them, leave the
        log ending below the saved start, and recovery would move the start back under what
        this answered (found by tests/simulation, DeleteRecords to the high watermark right
        after acks=1 appends). A start at or above ``before_offset`` that is not saved yet (a
        retention or DeleteRecords whose checkpoint write failed) is saved the same way before
        it is answered.
        """
        if max(before_offset, self.log_start_offset) > self.flushed_offset:
            self.flush()  # the log end only grows: this covers before_offset if it is valid
        with self._flush_lock:
            with self._lock:
                self._check_writable()
                if not 0 <= before_offset <= self._next_offset:
                    raise OffsetOutOfRangeError(
                        f"{self.name}: cannot delete records before {before_offset}: the log "
                        f"ends at {self._next_offset}"
                    )
                start = max(before_offset, self._log_start)
                if start <= self._saved_log_start:
                    return self._saved_log_start
                if start > self._flushed_offset:
                    raise StorageError(f"{self.name}: records before {start} are not durable")
            # Saved first, moved in memory after: a failed write leaves no start that readers
            # and the producer-state rebuild trust but a power loss would undo (found by
            # tests/simulation, seed 860 of the full mode: a retry stored twice).
            self._write_checkpoint(log_start=start)
            with self._lock:
                self._log_start = max(self._log_start, start)
                self._epochs.truncate_from_start(self._log_start)
            self._delete_segments_below_start_locked()
            return start

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete whole segments past ``retention.ms`` or beyond ``retention.bytes``.

        Returns how many segments were deleted. The newest data always stays unless it has
        itself expired: then the active segment is rolled and deleted too, as Kafka does.
        """
        now = self._clock.now_ms() if now_ms is None else now_ms
        config = self._config
        with self._flush_lock:
            doomed: list[Segment] = []
            with self._lock:
                self._check_writable()
                horizon = now - config.retention_ms
                active = self._segments[-1]
                if config.retention_ms >= 0 and active.size and 0 <= active.max_timestamp < horizon:
                    self._roll_locked(now)
                # One pass over the oldest segments, deleting while either limit is broken: the
                # same end state as Kafka's separate time and size passes run to a fixpoint.
                total = sum(s.size for s in self._segments)
                for segment in self._segments[:-1]:
                    expired = (
                        config.retention_ms >= 0 and 0 <= _retention_time_ms(segment) < horizon
                    )
                    oversized = (
                        config.retention_bytes >= 0
                        and total - segment.size >= config.retention_bytes
                    )
                    if not (expired or oversized):
                        break
                    total -= segment.size
                    doomed.append(segment)
                if not doomed:
                    return 0
                self._log_start = max(self._log_start, self._segments[len(doomed)].base_offset)
                self._epochs.truncate_from_start(self._log_start)
            self._write_checkpoint()
            self._delete_segments_below_start_locked()
            return len(doomed)

    def _delete_segments_below_start(self) -> None:
        with self._flush_lock:
            self._delete_segments_below_start_locked()

    def _delete_segments_below_start_locked(self) -> None:
        # A segment goes once the *next* one starts at or below the log start (Kafka's rule):
        # not by its own end, since a segment the cleaner emptied ends where it begins, and
        # dropping it would move the log start up to the next segment at the next open.
        with self._lock:
            doomed = []
            while len(self._segments) > 1 and self._segments[1].base_offset <= self._log_start:
                doomed.append(self._segments.pop(0))
                self._bases.pop(0)
            for segment in doomed:
                if segment in self._unsealed:
                    self._unsealed.remove(segment)
        for segment in doomed:
            self._remove_segment_files(segment)
        if doomed:
            try:
                self._fs.fsync_dir(self.directory)
            except OSError as exc:
                raise self._health.fail(f"fsync of {self.directory} failed: {exc}") from exc

    def _remove_segment_files(self, segment: Segment) -> None:
        remove_segment_files(self._fs, self._handles, segment)

    # -- compaction (the cleaner's side: shoal.storage.cleaner) ---------------------------

    def cleanable_segments(self) -> tuple[list[Segment], int, int]:
        """The sealed segments whose bytes are durable, oldest first, the log start, and the
        base offset of the first segment after them (where they end, gaps included).

        Only these may be cleaned: the active segment still grows, and a rolled segment the
        flusher has not sealed yet may still be cut by recovery after a power loss.
        """
        with self._lock:
            if self._closed:
                raise LogClosedError(f"{self.name} is closed")
            sealed = []
            for segment in self._segments[:-1]:
                if segment in self._unsealed or segment.next_offset > self._flushed_offset:
                    break
                sealed.append(segment)
            return sealed, self._log_start, self._segments[len(sealed)].base_offset

    def new_cleaned_segment(self, base_offset: int) -> Segment:
        """An empty segment written beside the others under ``.cleaned`` names."""
        from shoal.storage.swap import CLEANED_SUFFIX

        self._check_writable()
        return Segment.create(
            self._fs,
            self.directory,
            base_offset,
            self._handles,
            index_interval_bytes=self._config.index_interval_bytes,
            now_ms=self._clock.now_ms(),
            suffix=CLEANED_SUFFIX,
            allow_gaps=True,
        )

    def replace_with_cleaned(
        self, old: list[Segment], new: Segment, *, durable: bool = False
    ) -> bool:
        """Swap ``new`` (written, fsynced, indexes saved) in for the consecutive ``old``.

        ``durable``: ``new`` and its indexes were fsynced already (by the cleaner's process,
        :meth:`adopt_cleaned_segment`): they are not fsynced and saved a second time.

        Returns False, changing nothing, when ``old`` are no longer segments of the log
        (retention or DeleteRecords removed one meanwhile); the caller discards ``new``.
        Readers never see a mix: the in-memory swap and the renames happen under the log's
        lock, and every read holds it.
        """
        from shoal.storage import swap

        try:
            if not durable:
                with self._handles.using(new.path) as f:
                    f.fsync()
                new.save_indexes(self._fs)
        except OSError as exc:
            raise self._health.fail(f"could not write a cleaned segment: {exc}") from exc
        with self._flush_lock:
            # Only holders of _flush_lock remove segments (retention, DeleteRecords, close), so
            # what is checked here stays true until the swap; appends may go on meanwhile.
            with self._lock:
                self._check_writable()
                if not self._holds_in_order(old):
                    return False
            try:
                swap.write_manifest(self._fs, self.directory, new, old)
                with self._lock:
                    # Readers hold this lock: none sees the files change under it, and the
                    # renames and unlinks here are quick metadata updates, never an fsync.
                    for segment in old:
                        segment.retired = True
                        self._handles.close(segment.path)
                    self._handles.close(new.path)
                    new.release_active_file()
                    swap.finish_swap_files(self._fs, self.directory, new, old)
                    first = self._segments.index(old[0])
                    self._segments[first : first + len(old)] = [new]
                    self._bases[first : first + len(old)] = [new.base_offset]
                swap.finish_commit(self._fs, self.directory)
            except OSError as exc:
                raise self._health.fail(
                    f"swapping in a cleaned segment in {self.directory} failed: {exc}"
                ) from exc
        return True

    def adopt_cleaned_segment(self, base_offset: int) -> Segment:
        """The cleaned segment at ``base_offset`` that the cleaner's process wrote (fsynced,
        indexes saved) beside the others, loaded for :meth:`replace_with_cleaned`."""
        from shoal.storage.swap import CLEANED_SUFFIX

        self._check_writable()
        segment = Segment(
            self.directory,
            base_offset,
            self._handles,
            index_interval_bytes=self._config.index_interval_bytes,
            created_ms=self._clock.now_ms(),
            suffix=CLEANED_SUFFIX,
            allow_gaps=True,
        )
        try:
            segment.load_or_rebuild(self._fs, "in a cleaned segment")
        except OSError as exc:
            raise StorageError(f"could not read the cleaned segment {segment.path}: {exc}") from exc
        return segment

    def fail_directory(self, reason: str) -> LogDirectoryFailedError:
        """Fail this log's data directory (read-only until a restart) for an I/O error met by
        work on its files outside the log's own calls (the cleaner's process); returns the
        error to raise or report."""
        return self._health.fail(reason)

    def discard_cleaned_files(self) -> None:
        """Remove every ``.cleaned`` file of this log: what a clean in the cleaner's process
        left when it was stopped (the swaps happen here, so none of them is committed)."""
        from shoal.storage.swap import CLEANED_SUFFIX, manifest_path

        with self._flush_lock:
            try:
                if self._fs.exists(manifest_path(self.directory)):
                    return  # a committed swap failed part-way: recovery needs these files
                for entry in self._fs.listdir(self.directory):
                    if entry.endswith(CLEANED_SUFFIX):
                        path = os.path.join(self.directory, entry)
                        self._handles.close(path)
                        self._fs.remove(path)
            except OSError as exc:
                log.warning("%s: could not remove a cleaned file: %s", self.name, exc)

    def discard_cleaned_segment(self, segment: Segment) -> None:
        """Remove the files of a cleaned segment that will not be swapped in."""
        from shoal.storage.swap import discard_cleaned

        try:
            discard_cleaned(self._fs, self._handles, segment)
        except OSError as exc:
            log.warning("%s: could not remove %s: %s", self.name, segment.path, exc)

    def _holds_in_order(self, old: list[Segment]) -> bool:
        """Whether ``old`` are consecutive sealed segments of this log, not the last one."""
        if not old or old[0] not in self._segments:
            return False
        first = self._segments.index(old[0])
        current = self._segments[first : first + len(old)]
        return (
            len(current) == len(old)
            and all(a is b for a, b in zip(current, old, strict=True))
            and first + len(old) < len(self._segments)
            and not any(s in self._unsealed for s in old)
        )

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Flush, save indexes and checkpoint (a clean shutdown), then release files.

        The files are released even when a final write fails; the failure is then raised as a
        :class:`StorageError` (so the manager leaves no clean-shutdown marker and the next start
        rebuilds what could not be saved), never as a bare OSError.
        """
        if self._closed:
            return
        try:
            if self._health.failure is None:
                self.flush()
                with self._flush_lock:
                    active = self._segments[-1]
                    try:
                        active.save_indexes(self._fs)
                    except OSError as exc:
                        raise self._failed_index_save(active, exc) from exc
                    self._write_checkpoint()
        finally:
            with self._flush_lock, self._lock:
                self._closed = True
                for segment in self._segments:
                    self._handles.close(segment.path)
                self._journals.close()
            if self._flusher is not None:
                self._flusher.unregister(self)
            self._fail_waiters(LogClosedError(f"{self.name} was closed"))

    def _failed_index_save(self, segment: Segment, exc: OSError) -> StorageError:
        # Found by the deterministic simulation (tests/simulation): ENOSPC here escaped
        # LogManager.close as an OSError, leaving the other logs unclosed and the lock held.
        if exc.errno in SPACE_ERRNOS:
            return DiskFullError(
                f"{self.name}: no space to save the indexes of {segment.path} at close; "
                "the next start rebuilds them"
            )
        return self._health.fail(f"could not save the indexes of {segment.path}: {exc}")
