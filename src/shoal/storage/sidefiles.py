"""What layers above storage may keep in a partition's directory, and how they read the log's
batch headers: both generic, so that storage stays ignorant of what they are used for.

*Side files* are small files (kilobytes to a few megabytes) saved whole next to the segments:
sealed with a CRC-32C trailer and replaced atomically, so a reader gets either a complete
version or None. A crash mid-write leaves a ``.tmp`` file that recovery removes. They vanish
with the partition's directory.

*Header walks* yield the header of each batch from an offset to the log end without reading
the records: a walk reads one small chunk per batch (or one per run of small batches).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

from shoal.storage.errors import DiskFullError, StorageError
from shoal.storage.fs import FileSystem, read_sealed, sealed, write_atomically

if TYPE_CHECKING:
    from shoal.records.header import BatchHeader
    from shoal.storage.segment import Segment

SIDE_FILE_NAME: Final = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
"""Lower-case words and dashes: never a segment (digits), index, checkpoint or temporary name."""
RESERVED_NAMES: Final = frozenset({"checkpoint", "leader-epoch-checkpoint"})
SIDE_FILE_BYTES_MAX: Final = 64 * 1024 * 1024
"""Side files are read whole into memory; anything larger is not a small file."""


def side_file_path(directory: str, name: str) -> str:
    if not SIDE_FILE_NAME.match(name) or name in RESERVED_NAMES:
        raise ValueError(f"{name!r} is not a valid side-file name")
    return os.path.join(directory, name)


def read_side_file(fs: FileSystem, directory: str, name: str) -> bytes | None:
    """The payload of side file ``name``, or None when it is missing, damaged or too large.
    Raises :class:`StorageError` when it cannot be read at all."""
    path = side_file_path(directory, name)
    try:
        return read_sealed(fs, path, max_bytes=SIDE_FILE_BYTES_MAX)
    except OSError as exc:
        raise StorageError(f"could not read {path}: {exc}") from exc


def write_side_file(fs: FileSystem, directory: str, name: str, payload: bytes) -> None:
    """Replace side file ``name`` with ``payload``, durably. Raises :class:`DiskFullError` when
    space runs out (the old version stays) and lets other ``OSError``s through."""
    if len(payload) > SIDE_FILE_BYTES_MAX:
        raise ValueError(f"side file {name!r} of {len(payload)} bytes is over the limit")
    path = side_file_path(directory, name)
    try:
        write_atomically(fs, path, sealed(payload))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"no space to save {path}; the previous version is kept") from exc
        raise


def walk_headers(
    name: str, segments: Sequence[Segment], start: int, end: int
) -> Iterator[BatchHeader]:
    """Headers of the batches in ``segments`` from the one holding ``start`` up to ``end``."""
    for segment in segments:
        if segment.next_offset <= start:
            continue
        try:
            for _position, header in segment.batches_from(max(start, segment.base_offset)):
                if header.base_offset >= end:
                    return
                yield header
        except OSError as exc:
            raise StorageError(f"{name}: reading batch headers of {segment.path}: {exc}") from exc
