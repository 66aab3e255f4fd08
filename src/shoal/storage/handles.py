"""A bounded pool of open segment files.

A broker with thousands of partitions has tens of thousands of segment files; keeping them all
open would exhaust the process's descriptors. Active segments (being written or awaiting fsync)
stay pinned open; sealed ones are opened on demand and the least recently used are closed when
the pool is full. A file in use by a reader is never closed under it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from shoal.invariant import invariant
from shoal.storage.fs import File, FileSystem


class FileHandles:
    def __init__(self, fs: FileSystem, *, max_open_files: int) -> None:
        invariant(max_open_files >= 1, "the pool needs room for at least one file")
        self._fs = fs
        self._max_open = max_open_files
        self._lock = threading.Lock()
        self._files: OrderedDict[str, File] = OrderedDict()  # least recently used first
        self._pins: dict[str, int] = {}
        self._users: dict[str, int] = {}

    @property
    def open_count(self) -> int:
        return len(self._files)

    def create(self, path: str) -> File:
        """Create ``path`` (empty) and keep it pinned open."""
        with self._lock:
            f = self._fs.open(path, create=True)
            self._files[path] = f
            self._pins[path] = self._pins.get(path, 0) + 1
            self._evict_locked()
            return f

    def pin(self, path: str) -> File:
        with self._lock:
            f = self._get_locked(path)
            self._pins[path] = self._pins.get(path, 0) + 1
            return f

    def pinned(self, path: str) -> File:
        """The open file of ``path``, which the caller has pinned (no pin count is taken)."""
        with self._lock:
            invariant(path in self._pins, f"{path} is not pinned open")
            return self._files[path]

    def unpin(self, path: str) -> None:
        with self._lock:
            count = self._pins.get(path, 0) - 1
            invariant(count >= 0, f"unpin of {path} that was not pinned")
            if count:
                self._pins[path] = count
            else:
                self._pins.pop(path, None)
            self._evict_locked()

    @contextmanager
    def using(self, path: str) -> Iterator[File]:
        """The open file for ``path``, kept open for the duration of the ``with`` block."""
        with self._lock:
            f = self._get_locked(path)
            self._users[path] = self._users.get(path, 0) + 1
        try:
            yield f
        finally:
            with self._lock:
                count = self._users[path] - 1
                if count:
                    self._users[path] = count
                else:
                    del self._users[path]
                self._evict_locked()

    def close(self, path: str) -> None:
        """Close ``path`` now (before deleting or renaming it)."""
        with self._lock:
            self._pins.pop(path, None)
            f = self._files.pop(path, None)
        if f is not None:
            f.close()

    def close_all(self) -> None:
        with self._lock:
            files = list(self._files.values())
            self._files.clear()
            self._pins.clear()
        for f in files:
            f.close()

    def _get_locked(self, path: str) -> File:
        f = self._files.get(path)
        if f is None:
            f = self._fs.open(path)
            self._files[path] = f
            self._evict_locked(keep=path)
        else:
            self._files.move_to_end(path)
        return f

    def _evict_locked(self, keep: str | None = None) -> None:
        if len(self._files) <= self._max_open:
            return
        for path in list(self._files):
            if len(self._files) <= self._max_open:
                break
            if path == keep or path in self._pins or path in self._users:
                continue
            self._files.pop(path).close()
