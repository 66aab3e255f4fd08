"""The file interface storage writes through.

Everything the log does to a disk goes through :class:`FileSystem` and :class:`File`, so that crash
tests can swap in a fault-injecting implementation (``shoal.testing.faultfs``) that forgets every
byte not yet fsynced, or fails a write with ENOSPC halfway. The interface is deliberately small:
append-only writes, positional reads, fsync, truncate, and the few directory operations the log
needs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Sequence
from typing import Final, Protocol

from shoal.buffers import Buffer, skip_bytes
from shoal.records.crc import crc32c
from shoal.storage.read_buffers import READ_BUFFERS


class File(Protocol):
    @property
    def path(self) -> str: ...

    def size(self) -> int:
        """Bytes in the file as this process sees them (written, not necessarily durable)."""
        ...

    def append(self, parts: Sequence[Buffer]) -> None:
        """Write ``parts`` at the end of the file, in order.

        May fail partway (ENOSPC): then some prefix of the bytes may have been written and the
        caller truncates back. :meth:`size` is correct afterwards either way.
        """
        ...

    def pread(self, size: int, position: int) -> bytes:
        """Read up to ``size`` bytes at ``position``; fewer only at the end of the file."""
        ...

    def pread_cached(self, size: int, position: int) -> bytearray | None:
        """The ``size`` bytes at ``position`` if the OS holds all of them in memory now (the
        page cache), else None, without ever waiting for the disk.

        The event loop reads with this: a hit costs one copy out of the page cache, a miss
        costs nothing and the caller reads again on a thread that may wait.
        """
        ...

    def fsync(self) -> None: ...

    def truncate(self, size: int) -> None: ...

    def close(self) -> None: ...

    def fileno(self) -> int | None:
        """The OS descriptor, for sendfile; None where the file is not a real one."""
        ...


class FileSystem(Protocol):
    def open(self, path: str, *, create: bool = False) -> File:
        """Open for reading and appending; ``create`` makes a new empty file if none exists."""
        ...

    def exists(self, path: str) -> bool: ...

    def listdir(self, path: str) -> list[str]: ...

    def makedirs(self, path: str) -> None: ...

    def remove(self, path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None: ...

    def rmtree(self, path: str) -> None: ...

    def fsync_dir(self, path: str) -> None:
        """Make the directory's entries (creations, renames, removals) durable."""
        ...

    def lock(self, path: str) -> None:
        """Take an exclusive lock on ``path`` for this process, or fail if another holds it."""
        ...

    def unlock(self, path: str) -> None: ...


_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)
"""Linux (4.14+) ``preadv2`` flag: fail with EAGAIN instead of reading from the disk."""


class OsFile:
    """A file on the real disk, written with ``pwritev`` at a position this object tracks."""

    __slots__ = ("_fd", "_path", "_size")

    def __init__(self, path: str, fd: int) -> None:
        self._path = path
        self._fd = fd
        self._size = os.fstat(fd).st_size

    @property
    def path(self) -> str:
        return self._path

    def size(self) -> int:
        return self._size

    def append(self, parts: Sequence[Buffer]) -> None:
        views = [memoryview(p) for p in parts]
        total = sum(v.nbytes for v in views)
        target = self._size + total
        try:
            while self._size < target:
                written = os.pwritev(self._fd, views, self._size)
                self._size += written
                if self._size < target:
                    views = skip_bytes(views, written)
        finally:
            # A short or failed write leaves an unknown prefix on disk: ask the kernel.
            if self._size != target:
                self._size = os.fstat(self._fd).st_size

    def pread(self, size: int, position: int) -> bytes:
        return os.pread(self._fd, size, position)

    def pread_cached(self, size: int, position: int) -> bytearray | None:
        if _RWF_NOWAIT is None:
            return None  # no way to ask "only if cached" here: every read may wait
        # A pooled buffer: no zero-fill, no fresh pages (see shoal.storage.read_buffers).
        buffer = READ_BUFFERS.take(size)
        try:
            got = os.preadv(self._fd, [buffer], position, _RWF_NOWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return None  # a file system without RWF_NOWAIT reads
            raise
        # Short: part of the range is not cached (or lies past the end, which the blocking
        # read reports to the caller as it always has).
        return buffer if got == size else None

    def fsync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self._size = size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def fileno(self) -> int | None:
        return self._fd


class OsFileSystem:
    """The real filesystem."""

    def __init__(self) -> None:
        self._locks: dict[str, int] = {}

    def open(self, path: str, *, create: bool = False) -> File:
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        return OsFile(path, os.open(path, flags, 0o644))

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def remove(self, path: str) -> None:
        os.remove(path)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def rmtree(self, path: str) -> None:
        shutil.rmtree(path)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise OSError(
                    exc.errno, f"{path} is locked: another shoal process uses this directory"
                ) from exc
            raise
        self._locks[path] = fd  # held, with its descriptor open, until unlock

    def unlock(self, path: str) -> None:
        fd = self._locks.pop(path, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


def read_whole(fs: FileSystem, path: str) -> bytes:
    f = fs.open(path)
    try:
        return f.pread(f.size(), 0)
    finally:
        f.close()


SPACE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
"""A full device or an exhausted quota: the write may succeed once space is freed."""


class NoSpaceForCopy(OSError):
    """:func:`write_atomically` found no space for the new copy: the target is untouched (the
    old content stays, whole) and the partial copy is removed, so the caller may retry later
    instead of treating the directory as failed."""


def write_atomically(fs: FileSystem, path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new content.

    Write a temporary file, fsync it, rename over the target, fsync the directory. Raises
    :class:`NoSpaceForCopy` when the temporary copy cannot be written for lack of space.
    """
    tmp = path + ".tmp"
    if fs.exists(tmp):
        fs.remove(tmp)
    f = fs.open(tmp, create=True)
    try:
        f.append([data])
        f.fsync()
    except OSError as exc:
        if exc.errno not in SPACE_ERRNOS:
            raise
        f.close()
        with contextlib.suppress(OSError):
            fs.remove(tmp)
        raise NoSpaceForCopy(exc.errno, f"no space to write {path}: {exc.strerror}") from exc
    finally:
        f.close()
    fs.rename(tmp, path)
    fs.fsync_dir(os.path.dirname(path) or ".")


def sealed(payload: bytes) -> bytes:
    """``payload`` followed by its CRC-32C, for small metadata files that must detect damage."""
    return payload + crc32c(payload).to_bytes(4, "big")


def read_sealed(fs: FileSystem, path: str, *, max_bytes: int | None = None) -> bytes | None:
    """The payload of the :func:`sealed` file at ``path``; None when it is missing, damaged,
    or (with ``max_bytes``) larger than that payload could be."""
    if not fs.exists(path):
        return None
    f = fs.open(path)
    try:
        size = f.size()
        if max_bytes is not None and size > max_bytes + 4:
            return None
        return unseal(f.pread(size, 0))
    finally:
        f.close()


def unseal(data: bytes) -> bytes | None:
    """The payload of a :func:`sealed` blob, or None when it is torn or damaged."""
    if len(data) < 4:
        return None
    payload, crc = data[:-4], int.from_bytes(data[-4:], "big")
    return payload if crc32c(payload) == crc else None
