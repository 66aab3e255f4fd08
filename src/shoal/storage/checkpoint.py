"""The per-partition checkpoint file: recovery point and log start offset.

Layout (big-endian), sealed with a CRC-32C trailer and replaced atomically::

    b"SHCP" | version u8 = 1 | recovery_point i64 | log_start_offset i64 | crc32c u32

The recovery point is an offset below which every byte was fsynced before the file was written;
recovery re-checks only what lies at or after it, and refuses damage below it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Final

from shoal.storage.fs import FileSystem, read_sealed, sealed, write_atomically

CHECKPOINT_FILE: Final = "checkpoint"
_LAYOUT: Final = struct.Struct(">4sBqq")
_MAGIC: Final = b"SHCP"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    recovery_point: int
    log_start_offset: int


def read_checkpoint(fs: FileSystem, directory: str) -> Checkpoint | None:
    """The saved checkpoint, or None if there is none or it is damaged (then check everything)."""
    payload = read_sealed(fs, os.path.join(directory, CHECKPOINT_FILE))
    if payload is None or len(payload) != _LAYOUT.size:
        return None
    magic, version, recovery_point, log_start = _LAYOUT.unpack(payload)
    if magic != _MAGIC or version != 1 or recovery_point < 0 or log_start < 0:
        return None
    return Checkpoint(recovery_point, log_start)


def write_checkpoint(fs: FileSystem, directory: str, checkpoint: Checkpoint) -> None:
    payload = _LAYOUT.pack(_MAGIC, 1, checkpoint.recovery_point, checkpoint.log_start_offset)
    write_atomically(fs, os.path.join(directory, CHECKPOINT_FILE), sealed(payload))
