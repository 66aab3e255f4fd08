"""The size of the volume a log directory lives on, as DescribeLogDirs v4+ reports it."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VolumeSpace:
    path: str
    """The directory's absolute path: the name clients use for it (AlterReplicaLogDirs)."""
    total_bytes: int
    usable_bytes: int
    """What an unprivileged process may still write (statvfs f_bavail), as Java's
    FileStore.getUsableSpace: less than the free space when blocks are reserved for root."""


def log_dir_path(directory: str) -> str:
    """The name Kafka gives a log directory: its absolute path (symbolic links not resolved,
    as Java's File.getAbsolutePath)."""
    return os.path.abspath(directory)


def volume_space(directory: str) -> VolumeSpace:
    """Total and usable bytes of the file system holding ``directory``; raises OSError."""
    stats = os.statvfs(directory)
    return VolumeSpace(
        path=log_dir_path(directory),
        total_bytes=stats.f_blocks * stats.f_frsize,
        usable_bytes=stats.f_bavail * stats.f_frsize,
    )
