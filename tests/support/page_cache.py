"""Dropping files from the OS page cache, so a test can make the next read go to the disk."""

from __future__ import annotations

import ctypes
import mmap
import os
import time
from pathlib import Path

_ATTEMPTS = 20


def evict(directory: Path) -> None:
    """Drop every file under ``directory`` from the page cache, and check that it went.

    ``POSIX_FADV_DONTNEED`` drops clean pages only, so each file is fsynced first. The kernel
    also skips pages still sitting in another CPU's LRU batch (pages written a moment ago by a
    thread that ran there), and drains only the calling CPU's batch; so the advice is given
    from each CPU in turn, and repeated until a non-blocking read of every file refuses.
    """
    files = [path for path in directory.rglob("*") if path.is_file() and path.stat().st_size]
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    remaining = files
    for _ in range(_ATTEMPTS):
        _advise_dontneed_from_every_cpu(remaining)
        remaining = [path for path in remaining if _any_page_cached(path)]
        if not remaining:
            return
        time.sleep(0.05)
    raise AssertionError(f"the page cache kept {[str(p) for p in remaining]}")


def _advise_dontneed_from_every_cpu(files: list[Path]) -> None:
    allowed = os.sched_getaffinity(0)
    try:
        for cpu in sorted(allowed):
            os.sched_setaffinity(0, {cpu})
            for path in files:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
    finally:
        os.sched_setaffinity(0, allowed)


def _any_page_cached(path: Path) -> bool:
    """Whether any page of ``path`` is in the page cache, asked with ``mincore``.

    Asking with a read would not do: a non-blocking read that misses still starts readahead,
    which fills the very cache being emptied.
    """
    size = path.stat().st_size
    page_size = os.sysconf("SC_PAGE_SIZE")
    pages = (size + page_size - 1) // page_size
    fd = os.open(path, os.O_RDONLY)
    try:
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            residency = (ctypes.c_ubyte * pages)()
            if _libc.mincore(ctypes.c_void_p(address), size, residency) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            return any(flag & 1 for flag in residency)
        finally:
            _libc.munmap(ctypes.c_void_p(address), size)
    finally:
        os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
