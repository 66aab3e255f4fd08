"""One segment of a partition log: a file of whole batches plus its offset and time indexes.

A segment is named by its base offset (``00000000000000000042.log``). It holds only complete
batches back to back; the only byte of a batch the log changes is its baseOffset, written on
append. Indexes live in memory and are saved, sealed with a CRC, when the segment is sealed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from shoal.buffers import Buffer
from shoal.invariant import invariant
from shoal.records.header import BatchHeader, encode_prefix, read_header
from shoal.storage.errors import CorruptLogError, ReadWouldWait, StorageError
from shoal.storage.fs import File, FileSystem, read_sealed, sealed
from shoal.storage.handles import FileHandles
from shoal.storage.index import OffsetIndex, TimeIndex
from shoal.storage.scan import BatchScanner, ScanProblem

LOG_SUFFIX: Final = ".log"
INDEX_SUFFIX: Final = ".index"
TIME_INDEX_SUFFIX: Final = ".timeindex"
NO_TIMESTAMP: Final = -1
WALK_CHUNK_BYTES: Final = 16 * 1024
"""Read size when walking a few batches from an index entry: a little more than the interval."""
MAX_POSITION_HINTS: Final = 32
"""Remembered (offset -> position) pairs at the ends of recent reads: sequential consumers skip
the index walk. A handful per active consumer is plenty; the bound keeps memory flat."""


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


@dataclass(frozen=True, slots=True)
class SegmentRead:
    """Bytes of whole batches read from one segment."""

    data: bytes | bytearray
    """A ``bytearray`` when read with ``cached_only`` (filled in place, never copied again)."""
    first_offset: int
    """Base offset of the first batch returned (may be below the offset asked for)."""
    next_offset: int
    """The offset after the last batch returned: where the next read continues."""


class Segment:
    def __init__(
        self,
        directory: str,
        base_offset: int,
        handles: FileHandles,
        *,
        index_interval_bytes: int,
        created_ms: int,
        suffix: str = "",
        allow_gaps: bool = False,
    ) -> None:
        self.base_offset = base_offset
        self.directory = directory
        self._set_paths(suffix)
        self.allow_gaps = allow_gaps
        """Compaction leaves gaps between batches; without it offsets must be contiguous, which
        is the only check on a baseOffset (it lies outside the CRC)."""
        self.retired = False
        """Set when the cleaner replaced this segment: walks still holding it must stop."""
        self._handles = handles
        self._interval = index_interval_bytes
        self.created_ms = created_ms
        self.next_offset = base_offset
        self.size = 0
        self.max_timestamp = NO_TIMESTAMP
        self.index = OffsetIndex(base_offset)
        self.time_index = TimeIndex(base_offset)
        self._bytes_since_index = 0
        self._last_batch_base = base_offset
        self._hints: dict[int, int] = {}
        self._active_file: File | None = None

    def _set_paths(self, suffix: str) -> None:
        stem = os.path.join(self.directory, segment_name(self.base_offset))
        self.suffix = suffix
        self.path = stem + LOG_SUFFIX + suffix
        self.index_path = stem + INDEX_SUFFIX + suffix
        self.time_index_path = stem + TIME_INDEX_SUFFIX + suffix

    def rename_suffix(self, fs: FileSystem, suffix: str) -> None:
        """Rename the segment's files to carry ``suffix`` (the log last: a log file whose index
        files did not follow is still whole, and a missing index is rebuilt). The caller closes
        the handle first and fsyncs the directory after."""
        old = (self.index_path, self.time_index_path, self.path)
        self._set_paths(suffix)
        for src, dst in zip(old, (self.index_path, self.time_index_path, self.path), strict=True):
            if fs.exists(src):
                fs.rename(src, dst)

    # -- creation and loading -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        fs: FileSystem,
        directory: str,
        base_offset: int,
        handles: FileHandles,
        *,
        index_interval_bytes: int,
        now_ms: int,
        suffix: str = "",
        allow_gaps: bool = False,
    ) -> Segment:
        """A new empty segment, pinned open for appends (the caller fsyncs the directory)."""
        segment = cls(
            directory,
            base_offset,
            handles,
            index_interval_bytes=index_interval_bytes,
            created_ms=now_ms,
            suffix=suffix,
            allow_gaps=allow_gaps,
        )
        for stale in (segment.index_path, segment.time_index_path):
            if fs.exists(stale):
                fs.remove(stale)
        if suffix and fs.exists(segment.path):
            fs.remove(segment.path)  # a cleaned file left by an interrupted clean
        handles.create(segment.path)
        return segment

    def load_sealed(self, fs: FileSystem) -> bool:
        """Load the saved indexes and check the tail after the last index entry.

        Returns False when the index files are missing or damaged (the caller then rebuilds).
        Raises :class:`CorruptLogError` if the log bytes themselves are malformed: a sealed
        segment lies below the recovery point, so its data was fsynced and must be intact.
        """
        with self._handles.using(self.path) as f:
            self.size = f.size()
        index = read_sealed(fs, self.index_path)
        offsets = None if index is None else OffsetIndex.decode(self.base_offset, index, self.size)
        if offsets is None:
            return False
        start_offset, start_position = offsets.floor(2**63 - 1)
        self.index = offsets
        problem = self._walk_and_index(start_position, start_offset, crc_from_offset=None)
        if problem is not None:
            raise CorruptLogError(self._describe(problem, "below the recovery point"))
        times = read_sealed(fs, self.time_index_path)
        time_index = (
            None if times is None else TimeIndex.decode(self.base_offset, times, self.next_offset)
        )
        if time_index is None:
            return False
        last = time_index.last()
        if last is not None:
            self.max_timestamp = max(self.max_timestamp, last[0])
        self.time_index = time_index
        self._sync_time_index_to_max()
        return True

    def load_or_rebuild(self, fs: FileSystem, where: str) -> None:
        """Load a whole segment written elsewhere (a cleaned one): its saved indexes when they
        are valid, else rebuilt from the log with every CRC checked; :class:`StorageError`
        (``where`` in the message) when the log itself is damaged."""
        if self.load_sealed(fs):
            return
        problem = self.rebuild(crc_from_offset=None)
        if problem is not None:
            raise StorageError(self.describe_problem(problem, where))

    def rebuild(self, *, crc_from_offset: int | None) -> ScanProblem | None:
        """Rebuild the indexes by walking every batch; stop at the first bad one.

        Returns the problem (position and reason) if the walk stopped early; the segment then
        describes only the good batches before it, and the caller decides whether to cut the
        file there (a torn tail) or refuse it (damage below the recovery point).
        """
        self.index = OffsetIndex(self.base_offset)
        self.time_index = TimeIndex(self.base_offset)
        self.max_timestamp = NO_TIMESTAMP
        self.next_offset = self.base_offset
        self._bytes_since_index = 0
        with self._handles.using(self.path) as f:
            self.size = f.size()
        return self._walk_and_index(0, self.base_offset, crc_from_offset=crc_from_offset)

    def _walk_and_index(
        self, start_position: int, start_offset: int, *, crc_from_offset: int | None
    ) -> ScanProblem | None:
        with self._handles.using(self.path) as f:
            scanner = BatchScanner(
                f,
                start_position,
                self.size,
                crc_from_offset=crc_from_offset,
                min_base_offset=start_offset,
                contiguous=not self.allow_gaps,
            )
            for position, header in scanner:
                if position > start_position:
                    self._maybe_index(header.base_offset, position)
                self._account(header, header.base_offset)
            good_end = scanner.end_position if start_position < self.size else start_position
        if scanner.problem is None:
            return None
        self.size = good_end
        return scanner.problem

    def cut_at(self, position: int) -> None:
        """Truncate the file to ``position`` (a batch boundary found by :meth:`rebuild`)."""
        with self._handles.using(self.path) as f:
            f.truncate(position)
        self.size = position

    def first_batch_timestamp(self) -> int:
        if self.size == 0:
            return NO_TIMESTAMP
        with self._handles.using(self.path) as f:
            return read_header(f.pread(61, 0)).max_timestamp

    # -- appending ------------------------------------------------------------------------

    def append(
        self, base_offset: int, batch: Buffer, header: BatchHeader, leader_epoch: int
    ) -> int:
        """Write ``batch`` with ``base_offset`` and ``leader_epoch`` and index it; returns its
        file position. Both fields lie outside the CRC: one 16-byte prefix replaces the first
        16 bytes of the batch and the rest is written from the caller's buffer, uncopied.

        On an OSError the caller must :meth:`rollback` to the size before the call. A segment
        that allows gaps (one the cleaner writes) takes any later offset.
        """
        view = memoryview(batch)
        invariant(
            base_offset == self.next_offset or (self.allow_gaps and base_offset > self.next_offset),
            "appends must continue the segment's offsets",
        )
        position = self.size
        # An active segment is pinned open, so its handle is kept here rather than looked up
        # in the pool on every append (this is the produce hot path).
        f = self._active_file
        if f is None:
            f = self._active_file = self._handles.pinned(self.path)
        f.append([encode_prefix(base_offset, header.batch_length, leader_epoch), view[16:]])
        self.size = position + view.nbytes
        if position > 0:
            self._maybe_index(base_offset, position)
        self._account(header, base_offset)
        return position

    def release_active_file(self) -> None:
        """Forget the pinned handle once the segment is sealed (the caller unpins it)."""
        self._active_file = None

    def rollback(self, size: int) -> None:
        """Undo a failed append: cut the file back to ``size`` (indexes were not touched)."""
        with self._handles.using(self.path) as f:
            f.truncate(size)
        self.size = size

    def _maybe_index(self, base_offset: int, position: int) -> None:
        if self._bytes_since_index >= self._interval:
            self.index.append(base_offset, position)
            self._bytes_since_index = 0
            last = self.time_index.last()
            if self.max_timestamp > (NO_TIMESTAMP if last is None else last[0]):
                # Entries say "every batch up to this one has a timestamp <= max so far".
                # The batch at `position` is not accounted yet, so the entry names the previous.
                self.time_index.append(self.max_timestamp, self._last_batch_base)

    def _account(self, header: BatchHeader, base_offset: int) -> None:
        """Track a batch now at ``base_offset`` (its header may still carry the client's)."""
        self._bytes_since_index += header.size
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
        self._last_batch_base = base_offset
        self.next_offset = base_offset + header.last_offset_delta + 1

    def _sync_time_index_to_max(self) -> None:
        """Make the last time-index entry carry the segment's max timestamp (done at seal)."""
        last = self.time_index.last()
        if self.max_timestamp > (NO_TIMESTAMP if last is None else last[0]):
            if last is None or self._last_batch_base > last[1]:
                self.time_index.append(self.max_timestamp, self._last_batch_base)

    def save_indexes(self, fs: FileSystem) -> None:
        """Write both index files whole, with CRC trailers, and fsync them."""
        self._sync_time_index_to_max()
        for path, payload in (
            (self.index_path, self.index.encode()),
            (self.time_index_path, self.time_index.encode()),
        ):
            f = fs.open(path, create=True)
            try:
                f.truncate(0)
                f.append([sealed(payload)])
                f.fsync()
            finally:
                f.close()

    # -- reading --------------------------------------------------------------------------

    def read(
        self, offset: int, max_bytes: int, max_offset: int, *, cached_only: bool = False
    ) -> SegmentRead | None:
        """Whole batches from the one holding ``offset``, about ``max_bytes`` of them.

        At least one batch is returned even if it is larger than ``max_bytes``; no batch whose
        base offset is at or past ``max_offset`` is (the high watermark or stable offset).
        Returns None when the segment has no batch at or past ``offset`` below ``max_offset``.
        With ``cached_only`` nothing waits for the disk: every read, the header walks too, is
        served from the page cache or raises :class:`ReadWouldWait`.
        """
        with self._handles.using(self.path) as opened:
            f = _CachedReads(opened) if cached_only else opened
            located = self._locate(f, offset)
            if located is None:
                return None
            start, first_offset, first_size = located
            if first_offset >= max_offset:
                return None
            limit = start + max(max_bytes, first_size)
            if max_offset < self.next_offset:
                cap = self._locate(f, max_offset)
                if cap is not None:
                    limit = min(limit, cap[0])
            end, next_offset = self._last_boundary_before(f, start, limit)
            data: bytes | bytearray | None = (
                opened.pread_cached(end - start, start)
                if cached_only
                else opened.pread(end - start, start)
            )
        if data is None:
            raise ReadWouldWait(f"{self.path} [{start}, {end}) is not in the page cache")
        invariant(len(data) == end - start, f"short read of {self.path} at {start}")
        self._remember(next_offset, end)
        return SegmentRead(data, first_offset, next_offset)

    def batches_from(self, offset: int) -> Iterator[tuple[int, BatchHeader]]:
        """``(position, header)`` of each batch from the one holding ``offset`` to the end."""
        with self._handles.using(self.path) as f:
            self._check_not_retired()
            entry_offset, entry_position = self.index.floor(offset)
            walk = self._walk(f, entry_position, entry_offset)
            for position, header in walk:
                if header.last_offset >= offset:
                    yield position, header
            self._raise_if_damaged(walk)

    def read_batch(self, position: int, size: int) -> bytes:
        with self._handles.using(self.path) as f:
            self._check_not_retired()
            data = f.pread(size, position)
        invariant(len(data) == size, f"short read of {self.path} at {position}")
        return data

    def _locate(self, f: File, offset: int) -> tuple[int, int, int] | None:
        """``(position, base_offset, size)`` of the batch holding ``offset`` (or the first one
        after it, where offsets have gaps); None past the end."""
        if offset >= self.next_offset:
            return None
        position = self._hints.get(offset)
        from_offset, from_position = (
            (offset, position) if position is not None else self.index.floor(offset)
        )
        walk = self._walk(f, from_position, from_offset)
        for pos, header in walk:
            if header.last_offset >= offset:
                return pos, header.base_offset, header.size
        self._raise_if_damaged(walk)
        return None

    def _last_boundary_before(self, f: File, start: int, limit: int) -> tuple[int, int]:
        """End position and next offset of the last whole batch ending at or before ``limit``
        (at least the batch at ``start``)."""
        if limit >= self.size:
            return self.size, self.next_offset
        entry_offset, entry_position = self.index.floor_by_position(limit)
        if entry_position <= start:
            entry_offset, entry_position = read_header(f.pread(61, start)).base_offset, start
        end, next_offset = entry_position, entry_offset
        walk = self._walk(f, entry_position, entry_offset)
        for pos, header in walk:
            if pos + header.size > limit and pos > start:
                break
            end, next_offset = pos + header.size, header.next_offset
            if end >= limit:
                break
        self._raise_if_damaged(walk)
        return end, next_offset

    def _walk(self, f: File, position: int, base_offset: int) -> BatchScanner:
        return BatchScanner(
            f,
            position,
            self.size,
            min_base_offset=base_offset,
            contiguous=False,
            chunk_bytes=WALK_CHUNK_BYTES,
        )

    def _raise_if_damaged(self, walk: BatchScanner) -> None:
        if walk.problem is not None:
            raise CorruptLogError(self._describe(walk.problem, "found by a read"))

    def _remember(self, offset: int, position: int) -> None:
        if len(self._hints) >= MAX_POSITION_HINTS:
            self._hints.pop(next(iter(self._hints)))
        self._hints[offset] = position

    # -- helpers --------------------------------------------------------------------------

    def _check_not_retired(self) -> None:
        # Checked after the file is opened: the cleaner marks a segment retired before it
        # closes and renames its files, so a walk that opened either file learns of it here.
        if self.retired:
            raise StorageError(
                f"{self.path} was replaced by the log cleaner during a walk; walk again"
            )

    def _describe(self, problem: ScanProblem, where: str) -> str:
        return (
            f"{self.path}: damaged data {where} at byte {problem.position}: {problem.reason}. "
            "The partition is offline and its files are kept; restore them from a backup or "
            "move the segment away to accept the loss."
        )

    def describe_problem(self, problem: ScanProblem, where: str) -> str:
        return self._describe(problem, where)


class _CachedReads:
    """A segment file whose small reads (index walks, headers) never wait for the disk."""

    __slots__ = ("_file",)

    def __init__(self, file: File) -> None:
        self._file = file

    @property
    def path(self) -> str:
        return self._file.path

    def size(self) -> int:
        return self._file.size()

    def append(self, parts: Sequence[Buffer]) -> None:
        invariant(False, "a cached-only view is for reading")

    def pread(self, size: int, position: int) -> bytes:
        # A walk may ask past the end of the file (it reads in chunks): clip to what exists.
        size = max(0, min(size, self._file.size() - position))
        data = self._file.pread_cached(size, position)
        if data is None:
            raise ReadWouldWait(f"{self._file.path} at {position} is not in the page cache")
        return bytes(data)  # small (a header or a walk chunk): the copy is cheaper than a type

    def pread_cached(self, size: int, position: int) -> bytearray | None:
        return self._file.pread_cached(size, position)

    def fsync(self) -> None:
        invariant(False, "a cached-only view is for reading")

    def truncate(self, size: int) -> None:
        invariant(False, "a cached-only view is for reading")

    def close(self) -> None:
        invariant(False, "the pool owns the file")

    def fileno(self) -> int | None:
        return self._file.fileno()
