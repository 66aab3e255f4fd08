"""Walking the batches of a segment file: for recovery, index rebuilds and timestamp search.

The walk reads the file in large chunks and decodes headers from memory, because one read
syscall per batch would make recovering a segment of small batches far slower than the disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from shoal.records.header import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_V2,
    BatchHeader,
    computed_crc,
    read_header,
)
from shoal.storage.fs import File

SCAN_CHUNK_BYTES: Final = 8 * 1024 * 1024
"""Read size of a scan: large enough that syscalls vanish next to copying, small in memory."""

MAX_STORED_BATCH_BYTES: Final = 1 << 30
"""A batch length above this cannot have been appended by shoal: the header is damaged."""


@dataclass(frozen=True, slots=True)
class ScanProblem:
    """Where and why a walk stopped before the end of the file."""

    position: int
    reason: str


class BatchScanner:
    """Iterate ``(position, header)`` of the batches in ``file`` from ``start`` to ``end``.

    Stops at the first batch that is torn or malformed and records it in :attr:`problem`.
    With ``crc_from_offset`` set, every batch whose base offset is at or past it also has its
    CRC-32C checked (recovery checks what was written after the last checkpoint).
    """

    def __init__(
        self,
        file: File,
        start: int,
        end: int,
        *,
        crc_from_offset: int | None = None,
        min_base_offset: int,
        contiguous: bool = True,
        chunk_bytes: int = SCAN_CHUNK_BYTES,
    ) -> None:
        self._file = file
        self._start = start
        self._end = end
        self._crc_from = crc_from_offset
        self._min_base = min_base_offset
        self._contiguous = contiguous
        self._chunk = chunk_bytes
        self.problem: ScanProblem | None = None
        self.end_position = start
        """Position just past the last good batch."""

    def __iter__(self) -> Iterator[tuple[int, BatchHeader]]:
        position = self._start
        buf = b""
        buf_start = position
        expect_base = self._min_base
        while position < self._end:
            rel = position - buf_start
            if len(buf) - rel < HEADER_SIZE:
                buf, buf_start, rel = self._fill(position, self._chunk), position, 0
                if len(buf) < HEADER_SIZE:
                    self._stop(position, f"torn batch header: {len(buf)} bytes at the end")
                    return
            header = read_header(buf, rel)
            reason = _header_problem(header, expect_base, self._contiguous)
            if reason is not None:
                self._stop(position, reason)
                return
            size = header.size
            if size > self._end - position:
                self._stop(position, f"batch of {size} bytes runs past the end of the file")
                return
            if self._crc_from is not None and header.base_offset >= self._crc_from:
                if len(buf) - rel < size:  # only a CRC check needs the whole batch in memory
                    buf, buf_start, rel = self._fill(position, max(self._chunk, size)), position, 0
                if computed_crc(buf, rel, size) != header.crc:
                    self._stop(position, f"CRC mismatch in batch at offset {header.base_offset}")
                    return
            yield position, header
            position += size
            expect_base = header.next_offset
            self.end_position = position

    def _fill(self, position: int, size: int) -> bytes:
        return self._file.pread(min(size, self._end - position), position)

    def _stop(self, position: int, reason: str) -> None:
        self.problem = ScanProblem(position, reason)


def _header_problem(header: BatchHeader, expect_base: int, contiguous: bool) -> str | None:
    if header.magic != MAGIC_V2:
        return f"magic byte {header.magic} (only record batch v2 is stored)"
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD or header.size > MAX_STORED_BATCH_BYTES:
        return f"impossible batch length {header.batch_length}"
    if header.last_offset_delta < 0:
        return f"negative last offset delta {header.last_offset_delta}"
    # baseOffset lies outside the CRC, so its damage shows only here. Until compaction leaves
    # gaps, offsets in a log are contiguous and the check can be exact.
    if header.base_offset < expect_base or (contiguous and header.base_offset != expect_base):
        return f"base offset {header.base_offset} where {expect_base} was expected"
    return None
