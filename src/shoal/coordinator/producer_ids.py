"""Producer ids for InitProducerId: unique for the life of the data directory.

An id must never be handed out twice, even across crashes: a second producer with a reused id
and epoch 0 would be taken for the first one, and its batches refused as out of sequence or,
worse, answered as duplicates and dropped. So ids come from blocks reserved in a small file in
the data directory before any id of the block is used, as Kafka's ProducerIdManager reserves
blocks of 1000 in its metadata log. A crash wastes the rest of the block, never repeats an id.

Layout of ``<data dir>/producer-ids``, sealed with a CRC-32C trailer, replaced atomically::

    b"SHPI" | version u8 = 1 | next_block_start i64 | crc32c u32
"""

from __future__ import annotations

import errno
import logging
import os
import struct
from collections.abc import Callable
from typing import Final

from shoal.clock import Clock
from shoal.invariant import invariant
from shoal.storage import DiskFullError, StorageError
from shoal.storage.fs import FileSystem, read_whole, sealed, unseal, write_atomically

log = logging.getLogger(__name__)

PRODUCER_IDS_FILE: Final = "producer-ids"
BLOCK_SIZE: Final = 1000
"""Ids reserved per durable write: Kafka's block size. One fsync per thousand producers."""
PRODUCER_ID_MAX: Final = 2**63 - 1
DAMAGED_FILE_IDS_PER_MS: Final = 1000
"""After losing the file, restart from (now in ms) x this: above every id a previous run could
have reached unless it allocated over a thousand ids per millisecond of its whole life."""
_LAYOUT: Final = struct.Struct(">4sBq")
_MAGIC: Final = b"SHPI"


class ProducerIdAllocator:
    """Hands out producer ids. Not thread-safe: the broker calls it from its event loop."""

    def __init__(
        self,
        fs: FileSystem,
        data_dir: str,
        clock: Clock,
        *,
        fail_directory: Callable[[str], StorageError] | None = None,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        invariant(block_size > 0, "block_size must be positive")
        self._fs = fs
        self._path = os.path.join(data_dir, PRODUCER_IDS_FILE)
        self._clock = clock
        self._fail_directory = fail_directory
        self._block_size = block_size
        self._next = 0
        self._block_end = 0
        self._loaded = False

    def allocate(self) -> int:
        """A producer id never handed out before. Raises :class:`StorageError` when the block
        reservation cannot be saved (then no id is handed out)."""
        if self._next >= self._block_end:
            self._reserve_block()
        producer_id = self._next
        self._next += 1
        return producer_id

    def _reserve_block(self) -> None:
        start = self._block_end if self._loaded else self._saved_start()
        end = start + self._block_size
        invariant(end <= PRODUCER_ID_MAX, "producer ids are exhausted")
        payload = _LAYOUT.pack(_MAGIC, 1, end)
        try:
            write_atomically(self._fs, self._path, sealed(payload))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(f"no space to reserve producer ids in {self._path}") from exc
            reason = f"could not reserve producer ids in {self._path}: {exc}"
            if self._fail_directory is not None:
                raise self._fail_directory(reason) from exc
            raise StorageError(reason) from exc
        self._next, self._block_end, self._loaded = start, end, True

    def _saved_start(self) -> int:
        if not self._fs.exists(self._path):
            return 0
        payload = unseal(read_whole(self._fs, self._path))
        if payload is not None and len(payload) == _LAYOUT.size:
            magic, version, start = _LAYOUT.unpack(payload)
            if magic == _MAGIC and version == 1 and start >= 0:
                return int(start)
        floor = self._clock.now_ms() * DAMAGED_FILE_IDS_PER_MS
        log.warning(
            "%s is damaged; producer ids continue from %d so that none is reused",
            self._path,
            floor,
        )
        return floor
