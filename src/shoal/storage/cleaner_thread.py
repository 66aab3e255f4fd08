"""The log cleaner's thread: picks the dirtiest compacted log and cleans it, in the background.

As Kafka's ``LogCleaner`` with one thread (``log.cleaner.threads=1``): every
``log.cleaner.backoff.ms`` with nothing to do, it looks at every compacted log, works out its
dirty ratio (:func:`~shoal.storage.cleaner.assess`), and cleans the one with the highest ratio
among those at or above their ``min.cleanable.dirty.ratio`` (or past ``max.compaction.lag.ms``).
Its memory is the offset map, ``log.cleaner.dedupe.buffer.size`` bytes in Kafka's units; its
disk I/O is throttled to ``log.cleaner.io.max.bytes.per.second`` (reads and writes together).
It never runs on the event loop: the loop only appends and reads, under the log's lock, which a
clean takes only for the moment of each swap. In the broker the records themselves are decoded
and rewritten in the cleaner's own process (:mod:`shoal.storage.cleaner_process`), so that this
CPU-bound work never holds the GIL the event loop and the flusher need; this thread plans each
clean (batch headers only) and swaps in the segments the process wrote.

Where each log's clean should start next is its cleaner checkpoint (side file
``cleaner-offset-checkpoint``), so a restart does not redo finished work. A log whose clean
fails on damaged data is left alone until restart (Kafka's "uncleanable partitions"). An I/O
error in a clean, on this thread or in the cleaner's process, fails the log's data directory, as
the log's own I/O errors do (Kafka's cleaner takes the directory offline on an IOException);
without space the clean is only retried after the back-off.

:class:`CleanerMetrics` holds plain numbers (per-partition dirty ratio, bytes cleaned, time of
the last clean) that a metrics exporter can read at any time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from shoal.clock import Clock
from shoal.invariant import invariant
from shoal.storage import cleaner_process
from shoal.storage.cleaner import (
    PRODUCER_ID_EXPIRATION_MS_DEFAULT,
    Cleanable,
    CleanAborted,
    CleanContext,
    CleanPlan,
    CleanStats,
    assess,
    execute_clean,
    is_due,
    plan_clean,
    read_cleaner_checkpoint,
    write_cleaner_checkpoint,
)
from shoal.storage.cleaner_process import (
    CleanerProcess,
    CleanerProcessError,
    CleanJob,
    Throttler,
    with_step,
)
from shoal.storage.cleaner_txn import OpenTransactionScan
from shoal.storage.errors import DiskFullError, StorageError
from shoal.storage.fs import SPACE_ERRNOS
from shoal.storage.log import PartitionLog
from shoal.storage.offset_map import LOAD_FACTOR_DEFAULT, OffsetMap

log = logging.getLogger(__name__)

DEDUPE_BUFFER_BYTES_DEFAULT: Final = 128 * 1024 * 1024
"""Kafka's log.cleaner.dedupe.buffer.size default (128 MiB)."""
DEDUPE_BUFFER_BYTES_MIN: Final = 1024 * 1024
"""Kafka refuses less than 1 MiB per cleaner thread: the map must hold a useful key count."""
BACKOFF_MS_DEFAULT: Final = 15_000
"""Kafka's log.cleaner.backoff.ms: the pause when no log needs cleaning."""


@dataclass(frozen=True, slots=True)
class CleanerSettings:
    """The broker's log.cleaner.* settings."""

    enable: bool = True
    dedupe_buffer_bytes: int = DEDUPE_BUFFER_BYTES_DEFAULT
    io_buffer_load_factor: float = LOAD_FACTOR_DEFAULT
    io_max_bytes_per_second: float = math.inf
    """Kafka's default is Double.MaxValue: no throttling."""
    backoff_ms: int = BACKOFF_MS_DEFAULT
    producer_id_expiration_ms: int = PRODUCER_ID_EXPIRATION_MS_DEFAULT
    """Kafka's producer.id.expiration.ms: a producer silent this long loses its kept last
    batch (see :func:`~shoal.storage.cleaner.active_producers`)."""

    def __post_init__(self) -> None:
        invariant(
            self.dedupe_buffer_bytes >= DEDUPE_BUFFER_BYTES_MIN,
            "log.cleaner.dedupe.buffer.size must be at least 1 MiB",
        )
        invariant(0 < self.io_buffer_load_factor <= 1, "load factor must be in (0, 1]")
        invariant(self.io_max_bytes_per_second > 0, "the cleaner's I/O rate must be positive")
        invariant(self.backoff_ms > 0, "log.cleaner.backoff.ms must be positive")
        invariant(self.producer_id_expiration_ms > 0, "producer.id.expiration.ms must be positive")


@dataclass
class CleanerMetrics:
    """Numbers a metrics exporter reads; written by the cleaner thread only."""

    dirty_ratio: dict[str, float] = field(default_factory=dict)
    """Partition directory name -> dirty bytes / cleanable bytes, as of the last look."""
    max_dirty_ratio: float = 0.0
    """The highest of those (Kafka's max-dirty-percent, as a fraction)."""
    totals: CleanStats = field(default_factory=CleanStats)
    """Bytes read and written, records kept... over every clean since start."""
    cleans: int = 0
    last_clean_time_ms: int = -1
    """Wall-clock time the last clean finished; -1 before the first."""
    last_clean_duration_ms: float = 0.0
    seconds_total: float = 0.0
    """Time spent in cleans that finished, summed."""
    uncleanable: dict[str, str] = field(default_factory=dict)
    """Partitions skipped after a failed clean, with the reason."""


class LogCleaner:
    """The cleaner thread over the logs ``logs()`` returns (the compacted ones are cleaned)."""

    def __init__(
        self,
        logs: Callable[[], list[PartitionLog]],
        clock: Clock,
        settings: CleanerSettings,
        *,
        separate_process: bool = False,
    ) -> None:
        """``separate_process``: decode and rewrite records in the cleaner's own process
        (:mod:`shoal.storage.cleaner_process`; the broker's choice, on the real file system),
        not on this thread, where they would hold the GIL the event loop needs."""
        self._logs = logs
        self._process = CleanerProcess() if separate_process else None
        self._clock = clock
        self.settings = settings
        self.metrics = CleanerMetrics()
        self._map = OffsetMap(
            settings.dedupe_buffer_bytes, load_factor=settings.io_buffer_load_factor
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._checkpoints: weakref.WeakKeyDictionary[PartitionLog, int | None] = (
            weakref.WeakKeyDictionary()
        )
        """Each log's cleaner checkpoint, read once per log object (a deleted and re-created
        partition is a new object)."""
        self._scans: weakref.WeakKeyDictionary[PartitionLog, OpenTransactionScan] = (
            weakref.WeakKeyDictionary()
        )
        """Each log's scan for open transactions, continued at each look."""
        self._skipped: weakref.WeakSet[PartitionLog] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        invariant(self._thread is None, "the cleaner starts once")
        self._thread = threading.Thread(target=self._run, name="shoal-log-cleaner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the batch in progress; a clean cut short leaves the log as it was."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if self._process is not None:
            self._process.close()

    def update_settings(self, settings: CleanerSettings) -> None:
        """Take new settings from now on: the back-off before the next wait, the I/O rate
        from the next clean. The offset map keeps its size (set once, at construction)."""
        invariant(
            (settings.dedupe_buffer_bytes, settings.io_buffer_load_factor)
            == (self.settings.dedupe_buffer_bytes, self.settings.io_buffer_load_factor),
            "the offset map's size is set at start",
        )
        self.settings = settings  # one reference swap: the thread sees old or new, whole
        self._wake.set()

    def wake(self) -> None:
        """Look for work now rather than after the back-off (tests, config changes)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                cleaned = self.clean_dirtiest()
            except Exception:  # a bug must not end compaction for every log silently
                log.exception("the log cleaner failed; retrying after the back-off")
                cleaned = False
            if not cleaned:
                self._wake.wait(self.settings.backoff_ms / 1000)
                self._wake.clear()

    def clean_dirtiest(self) -> bool:
        """One round: clean the dirtiest log that is due; True if one was cleaned."""
        now_ms = self._clock.now_ms()
        chosen: tuple[PartitionLog, Cleanable] | None = None
        ratios: dict[str, float] = {}
        for plog in self._logs():
            if not plog.config.compact or plog in self._skipped:
                continue
            try:
                scan = self._scans.setdefault(plog, OpenTransactionScan())
                cleanable = assess(plog, self._checkpoint(plog), now_ms, scan)
            except StorageError:
                continue  # closed or deleted meanwhile
            ratios[plog.name] = cleanable.dirty_ratio
            if is_due(cleanable, plog.config.min_cleanable_dirty_ratio) and (
                chosen is None or cleanable.dirty_ratio > chosen[1].dirty_ratio
            ):
                chosen = (plog, cleanable)
        self.metrics.dirty_ratio = ratios
        self.metrics.max_dirty_ratio = max(ratios.values(), default=0.0)
        if chosen is None:
            return False
        return self._clean(*chosen, now_ms)

    def _job(self, plog: PartitionLog, plan: CleanPlan, ctx: CleanContext) -> CleanJob:
        return CleanJob(
            directory=plog.directory,
            name=plog.name,
            segments=tuple(s.base_offset for s in plan.segments),
            dirty=tuple(s.base_offset for s in plan.dirty),
            first_dirty=plan.first_dirty,
            first_uncleanable=plan.first_uncleanable,
            transactions=plan.transactions,
            producers=plan.producers,
            segment_bytes=plan.segment_bytes,
            index_interval_bytes=plog.config.index_interval_bytes,
            now_ms=ctx.now_ms,
            delete_retention_ms=ctx.delete_retention_ms,
            producer_id_expiration_ms=ctx.producer_id_expiration_ms,
            dedupe_buffer_bytes=self.settings.dedupe_buffer_bytes,
            load_factor=self.settings.io_buffer_load_factor,
            io_max_bytes_per_second=self.settings.io_max_bytes_per_second,
            step_hook=cleaner_process.step_hook_for_tests,
        )

    def _execute(self, plog: PartitionLog, plan: CleanPlan, ctx: CleanContext) -> int:
        """Run the planned clean: in the cleaner's process when there is one, else here."""
        process = self._process
        if process is None:
            return execute_clean(plog, plan, ctx)
        try:
            end = process.clean(plog, plan, ctx, self._job(plog, plan, ctx))
        except CleanerProcessError as exc:
            if process.cleans_done:
                raise  # it worked before: retried after the back-off, in a new process
            # It never finished a clean: an interpreter that cannot start it (an embedding
            # host whose sys.executable is not Python, a sandbox without fork/exec). Compaction
            # must not stop for that: clean on this thread, as before the process existed.
            log.warning(
                "the cleaner's own process could not clean (%s); cleaning on the broker's "
                "thread instead, which slows other requests while a clean runs",
                exc,
            )
            self._process = None
            raise CleanAborted(f"{plog.name}: retried on the cleaner thread") from exc
        return end

    def _checkpoint(self, plog: PartitionLog) -> int | None:
        if plog not in self._checkpoints:
            self._checkpoints[plog] = read_cleaner_checkpoint(plog)
        return self._checkpoints[plog]

    def _failed_directory(self, plog: PartitionLog, exc: OSError) -> bool:
        """An I/O error in a clean (reading a segment, writing or fsyncing a cleaned one, in
        either process): the disk is suspect, so the log's directory fails as for the log's own
        I/O errors (Kafka's cleaner marks the log directory offline on an IOException). The
        clean left only ``.cleaned`` files, which the restart removes."""
        failure = plog.fail_directory(f"cleaning {plog.name} failed: {exc}")
        log.error("%s: cleaning failed: %s", plog.name, failure)
        self._skipped.add(plog)
        self.metrics.uncleanable[plog.name] = str(failure)
        return False

    def _clean(self, plog: PartitionLog, cleanable: Cleanable, now_ms: int) -> bool:
        started = time.monotonic()
        ctx = CleanContext(
            now_ms=now_ms,
            offset_map=self._map,
            delete_retention_ms=plog.config.delete_retention_ms,
            producer_id_expiration_ms=self.settings.producer_id_expiration_ms,
            throttle=with_step(
                Throttler(self.settings.io_max_bytes_per_second, self._clock, self._stop.wait),
                cleaner_process.step_hook_for_tests,
            ),
            should_stop=self._stop.is_set,
            stats=self.metrics.totals,
        )
        try:
            if self._checkpoint(plog) is None:
                # The checkpoint's presence tells recovery that the log may have offset gaps:
                # it must exist before the first swap does.
                write_cleaner_checkpoint(plog, cleanable.first_dirty)
            plan = plan_clean(plog, cleanable, now_ms, ctx.producer_id_expiration_ms)
            end = self._execute(plog, plan, ctx)
            write_cleaner_checkpoint(plog, end)
        except CleanAborted as exc:
            log.info("%s", exc)
            return False
        except (DiskFullError, OSError) as exc:
            if not isinstance(exc, DiskFullError) and exc.errno not in SPACE_ERRNOS:
                return self._failed_directory(plog, exc)
            # The log's own writes wait for space too: this clean is retried, nothing was
            # swapped in past its last whole group.
            log.warning("%s: no space to clean, retrying after the back-off: %s", plog.name, exc)
            return False
        except StorageError as exc:
            log.error("%s: cleaning failed, the partition is left uncleaned: %s", plog.name, exc)
            self._skipped.add(plog)
            self.metrics.uncleanable[plog.name] = str(exc)
            return False
        finally:
            self._map.clear()  # the map's memory is released between cleans
        self._checkpoints[plog] = end
        self.metrics.cleans += 1
        self.metrics.last_clean_time_ms = self._clock.now_ms()
        elapsed_s = time.monotonic() - started
        self.metrics.last_clean_duration_ms = elapsed_s * 1000
        self.metrics.seconds_total += elapsed_s
        self.metrics.dirty_ratio[plog.name] = assess(plog, end, now_ms).dirty_ratio
        log.info(
            "%s: cleaned up to offset %d (dirty ratio was %.2f)",
            plog.name,
            end,
            cleanable.dirty_ratio,
        )
        return True
