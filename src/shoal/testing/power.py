"""A power switch in front of a file system: after :meth:`PowerSwitch.cut`, nothing gets through.

A whole broker can run on :class:`~shoal.testing.faultfs.FaultyFileSystem` and "lose power":
but a Python process cannot be frozen mid-instruction, and its flusher's threads or a snapshot
job may still be inside a write or an fsync when the test pulls the plug. Every call of the broker's
incarnation goes through this switch under one lock, so the cut happens between two calls:
after it each call fails with EIO, and the fault layer's crash decides what survived. A new
incarnation (the broker after the power comes back) gets a new switch on the same files.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Sequence

from shoal.buffers import Buffer
from shoal.storage.fs import File, FileSystem


class PowerSwitch:
    """One incarnation's view of ``fs``; closed for good by :meth:`cut`."""

    def __init__(self, fs: FileSystem) -> None:
        self._fs = fs
        self._lock = threading.Lock()
        self._on = True

    def cut(self) -> None:
        """Waits for the call in progress, if any; every later call fails."""
        with self._lock:
            self._on = False

    def _check(self, path: str) -> None:
        if not self._on:
            raise OSError(errno.EIO, "the power is off", path)

    # -- FileSystem -----------------------------------------------------------------------

    def open(self, path: str, *, create: bool = False) -> File:
        with self._lock:
            self._check(path)
            return _SwitchedFile(self, self._fs.open(path, create=create))

    def exists(self, path: str) -> bool:
        with self._lock:
            self._check(path)
            return self._fs.exists(path)

    def listdir(self, path: str) -> list[str]:
        with self._lock:
            self._check(path)
            return self._fs.listdir(path)

    def makedirs(self, path: str) -> None:
        with self._lock:
            self._check(path)
            self._fs.makedirs(path)

    def remove(self, path: str) -> None:
        with self._lock:
            self._check(path)
            self._fs.remove(path)

    def rename(self, src: str, dst: str) -> None:
        with self._lock:
            self._check(src)
            self._fs.rename(src, dst)

    def rmtree(self, path: str) -> None:
        with self._lock:
            self._check(path)
            self._fs.rmtree(path)

    def fsync_dir(self, path: str) -> None:
        with self._lock:
            self._check(path)
            self._fs.fsync_dir(path)

    def lock(self, path: str) -> None:
        with self._lock:
            self._check(path)
            self._fs.lock(path)

    def unlock(self, path: str) -> None:
        with self._lock:
            self._check(path)
            self._fs.unlock(path)


class _SwitchedFile:
    def __init__(self, switch: PowerSwitch, file: File) -> None:
        self._switch = switch
        self._file = file

    @property
    def path(self) -> str:
        return self._file.path

    def size(self) -> int:
        with self._switch._lock:
            self._switch._check(self.path)
            return self._file.size()

    def append(self, parts: Sequence[Buffer]) -> None:
        with self._switch._lock:
            self._switch._check(self.path)
            self._file.append(parts)

    def pread(self, size: int, position: int) -> bytes:
        with self._switch._lock:
            self._switch._check(self.path)
            return self._file.pread(size, position)

    def pread_cached(self, size: int, position: int) -> bytearray | None:
        with self._switch._lock:
            self._switch._check(self.path)
            return self._file.pread_cached(size, position)

    def fsync(self) -> None:
        with self._switch._lock:
            self._switch._check(self.path)
            self._file.fsync()

    def truncate(self, size: int) -> None:
        with self._switch._lock:
            self._switch._check(self.path)
            self._file.truncate(size)

    def close(self) -> None:
        # Closing after the cut is allowed (it changes nothing on disk) so old objects let go.
        with self._switch._lock:
            self._file.close()

    def fileno(self) -> int | None:
        return None
