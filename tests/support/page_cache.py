"""Dropping files from the OS page cache, so a test can make the next read go to the disk."""

from __future__ import annotations

import os
from pathlib import Path


def evict(directory: Path) -> None:
    """Drop every file under ``directory`` from the page cache.

    ``POSIX_FADV_DONTNEED`` drops clean pages only, so each file is fsynced first.
    """
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
