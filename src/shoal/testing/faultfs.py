"""An in-memory filesystem that simulates power loss and injects I/O errors.

Each file keeps two contents: what the process has written, and what an fsync last made
durable. Each directory likewise keeps its current entries and the entries its last fsync made
durable. :meth:`FaultyFileSystem.crash` throws away everything not durable, as a power cut would
(the idea of SQLite's crash tests): a file created but whose directory was never fsynced
vanishes; a file's unsynced appends vanish (or, with ``keep_unsynced``, a random prefix of them
survives, as the page cache may have written some back).

Faults are armed one at a time: ``fail_next_write(ENOSPC, after_bytes=10)`` writes 10 bytes
and then fails, like a disk that fills up mid-write; ``fail_next_fsync(EIO)`` fails an fsync.
``fail_fsyncs_under(directory)`` fails every fsync of a file or directory under ``directory``
until ``heal_fsyncs()``, like a bad region of a disk under one partition;
``hold_fsyncs_under(directory)`` makes those fsyncs wait until the test releases them (with
success or an error), like a slow one, to see what runs meanwhile.

Safe to use from several threads at once (the flusher's workers fsync in parallel).
"""

from __future__ import annotations

import errno
import os
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from shoal.buffers import Buffer


@dataclass
class _Inode:
    data: bytearray = field(default_factory=bytearray)
    durable: bytes = b""


class _MemFile:
    def __init__(self, fs: FaultyFileSystem, path: str, inode: _Inode) -> None:
        self._fs = fs
        self._path = path
        self._inode = inode
        self._closed = False

    @property
    def path(self) -> str:
        return self._path

    def size(self) -> int:
        return len(self._inode.data)

    def append(self, parts: Sequence[Buffer]) -> None:
        self._check_open()
        payload = b"".join(bytes(p) for p in parts)
        fault = self._fs._take_write_fault(len(payload))
        if fault is not None:
            err, written = fault
            self._inode.data += payload[:written]
            raise OSError(err, os.strerror(err), self._path)
        self._inode.data += payload
        self._fs.bytes_written += len(payload)

    def pread(self, size: int, position: int) -> bytes:
        self._check_open()
        return bytes(self._inode.data[position : position + size])

    def pread_cached(self, size: int, position: int) -> bytearray | None:
        # Everything here lives in memory: always "cached", short only at the end of a file.
        self._check_open()
        data = self._inode.data[position : position + size]
        return bytearray(data) if len(data) == size else None

    def fsync(self) -> None:
        self._check_open()
        err = self._fs._fsync_outcome(self._path)
        if err is not None:
            raise OSError(err, os.strerror(err), self._path)
        with self._fs._lock:
            self._inode.durable = bytes(self._inode.data)
            self._fs.fsync_count += 1

    def truncate(self, size: int) -> None:
        self._check_open()
        if self._fs._take_truncate_fault():
            raise OSError(errno.EIO, os.strerror(errno.EIO), self._path)
        del self._inode.data[size:]

    def close(self) -> None:
        self._closed = True

    def fileno(self) -> int | None:
        return None

    def _check_open(self) -> None:
        if self._closed:
            raise OSError(errno.EBADF, "file is closed", self._path)


class FsyncHold:
    """fsyncs held by :meth:`FaultyFileSystem.hold_fsyncs_under` until :meth:`release`."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._cond = threading.Condition()
        self._held = 0
        self.most_held = 0
        """The most fsyncs held at once so far."""
        self._released = False
        self._err: int | None = None
        self.paths: list[str] = []
        """The files and directories whose fsyncs were held, in the order they came."""

    @property
    def held(self) -> int:
        """fsyncs waiting now."""
        return self._held

    def wait_held(self, count: int = 1, timeout_s: float = 30.0) -> bool:
        """Wait until ``count`` fsyncs are held at once; False if that did not happen within
        ``timeout_s`` (a bound for a test that would otherwise hang, not a measure)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._held >= count, timeout_s)

    def release(self, err: int | None = None) -> None:
        """Let the held fsyncs (and later ones under the directory) end: with ``err`` they
        fail with that errno, as a disk that gave up would, else they succeed."""
        with self._cond:
            self._err = err
            self._released = True
            self._cond.notify_all()

    def wait(self, path: str) -> int | None:
        """Called by a held fsync of ``path``: returns once released, with the errno to fail
        with."""
        with self._cond:
            self.paths.append(path)
            self._held += 1
            self.most_held = max(self.most_held, self._held)
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._released)
            self._held -= 1
            return self._err


class FaultyFileSystem:
    """A :class:`shoal.storage.fs.FileSystem` in memory, with crashes and injected faults."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        """Guards the faults and counters: fsyncs arrive from several threads at once."""
        self._holds: tuple[FsyncHold, ...] = ()
        self._rng = random.Random(seed)
        self._dirs: dict[str, dict[str, _Inode]] = {"/": {}}
        self._durable_dirs: dict[str, dict[str, _Inode]] = {"/": {}}
        self._write_faults: list[tuple[int, int]] = []
        self._fsync_faults: list[int] = []
        self._truncate_faults = 0
        self._failing_fsyncs: tuple[str, int] | None = None
        self.space_left_bytes: int | None = None
        """When set, writes past this many more bytes fail with ENOSPC (partially)."""
        self.fsync_count = 0
        self.bytes_written = 0

    # -- faults ---------------------------------------------------------------------------

    def fail_next_write(self, err: int = errno.ENOSPC, *, after_bytes: int = 0) -> None:
        self._write_faults.append((err, after_bytes))

    def fail_next_fsync(self, err: int = errno.EIO) -> None:
        self._fsync_faults.append(err)

    def fail_fsyncs_under(self, directory: str, err: int = errno.EIO) -> None:
        self._failing_fsyncs = (self._norm(directory), err)

    def heal_fsyncs(self) -> None:
        self._failing_fsyncs = None

    def hold_fsyncs_under(self, directory: str) -> FsyncHold:
        """Make every fsync of a file or directory under ``directory`` wait until the returned
        hold is released (a released hold lets later fsyncs through). Holds on different
        directories are independent: one can hold a slow log while another only reports
        that a log's fsync began."""
        hold = FsyncHold(self._norm(directory))
        with self._lock:
            self._holds = (*self._holds, hold)
        return hold

    def release_hold(self) -> None:
        """Release every hold and hold nothing more (a test's teardown: a thread still held
        would never end)."""
        with self._lock:
            holds, self._holds = self._holds, ()
        for hold in holds:
            hold.release()

    def _fsync_outcome(self, path: str) -> int | None:
        """The errno an fsync of ``path`` fails with (None: it succeeds), once any hold on it
        is released."""
        with self._lock:
            err = self._take_fsync_fault(path)
            holds = self._holds
        for hold in holds:
            if self._under(self._norm(path), hold.directory):
                held_err = hold.wait(path)
                err = held_err if err is None else err
        return err

    def fail_next_truncate(self) -> None:
        self._truncate_faults += 1

    def _take_write_fault(self, size: int) -> tuple[int, int] | None:
        if self._write_faults:
            err, after = self._write_faults.pop(0)
            return err, min(after, size)
        if self.space_left_bytes is not None:
            if size > self.space_left_bytes:
                written = self.space_left_bytes
                self.space_left_bytes = 0
                return errno.ENOSPC, written
            self.space_left_bytes -= size
        return None

    def _take_fsync_fault(self, path: str) -> int | None:
        if self._fsync_faults:
            return self._fsync_faults.pop(0)
        if self._failing_fsyncs is not None:
            directory, err = self._failing_fsyncs
            if self._under(self._norm(path), directory):
                return err
        return None

    @staticmethod
    def _under(path: str, directory: str) -> bool:
        return path == directory or path.startswith(directory + "/")

    def _take_truncate_fault(self) -> bool:
        if self._truncate_faults:
            self._truncate_faults -= 1
            return True
        return False

    def crash(self, *, keep_unsynced: bool = False) -> None:
        """Simulate a power cut: only durable names and bytes remain.

        With ``keep_unsynced`` each file keeps a random prefix of its unsynced appended bytes
        (never bytes out of order), as a kernel may have written some of them back.
        """
        survivors: set[int] = set()
        self._dirs = {d: dict(entries) for d, entries in self._durable_dirs.items()}
        for entries in self._dirs.values():
            for inode in entries.values():
                if id(inode) in survivors:
                    continue
                survivors.add(id(inode))
                data = bytes(inode.data)
                kept = inode.durable
                if keep_unsynced and data.startswith(kept) and len(data) > len(kept):
                    kept = data[: self._rng.randint(len(kept), len(data))]
                inode.data = bytearray(kept)
                inode.durable = kept
        self.clear_faults()

    def clear_faults(self) -> None:
        """Disarm every fault not yet fired (space freed, the disk replaced)."""
        self._holds = ()
        self._write_faults.clear()
        self._fsync_faults.clear()
        self._truncate_faults = 0
        self._failing_fsyncs = None
        self.space_left_bytes = None

    # -- the FileSystem interface ---------------------------------------------------------

    def open(self, path: str, *, create: bool = False) -> _MemFile:
        directory, name = self._split(path)
        entries = self._dir(directory)
        inode = entries.get(name)
        if inode is None:
            if not create:
                raise FileNotFoundError(errno.ENOENT, "no such file", path)
            inode = entries[name] = _Inode()
        return _MemFile(self, path, inode)

    def exists(self, path: str) -> bool:
        path = self._norm(path)
        if path in self._dirs:
            return True
        directory, name = self._split(path)
        return name in self._dirs.get(directory, {})

    def listdir(self, path: str) -> list[str]:
        path = self._norm(path)
        names = list(self._dir(path))
        prefix = path.rstrip("/") + "/"
        names += [
            d[len(prefix) :]
            for d in self._dirs
            if d.startswith(prefix) and "/" not in d[len(prefix) :]
        ]
        return names

    def makedirs(self, path: str) -> None:
        # Directories are made durable at once: the crash model covers file data and entries.
        path = self._norm(path)
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            self._dirs.setdefault(d, {})
            self._durable_dirs.setdefault(d, {})

    def remove(self, path: str) -> None:
        directory, name = self._split(path)
        entries = self._dir(directory)
        if name not in entries:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        del entries[name]

    def rename(self, src: str, dst: str) -> None:
        src, dst = self._norm(src), self._norm(dst)
        if src in self._dirs:  # a directory: moves at once, durably (see makedirs)
            for table in (self._dirs, self._durable_dirs):
                for d in [d for d in table if d == src or d.startswith(src + "/")]:
                    table[dst + d[len(src) :]] = table.pop(d)
            return
        sdir, sname = self._split(src)
        ddir, dname = self._split(dst)
        inode = self._dir(sdir).pop(sname)
        self._dir(ddir)[dname] = inode

    def rmtree(self, path: str) -> None:
        path = self._norm(path)
        for table in (self._dirs, self._durable_dirs):
            for d in [d for d in table if d == path or d.startswith(path + "/")]:
                del table[d]

    def fsync_dir(self, path: str) -> None:
        path = self._norm(path)
        err = self._fsync_outcome(path)
        if err is not None:
            raise OSError(err, os.strerror(err), path)
        with self._lock:
            self._durable_dirs[path] = dict(self._dir(path))
            self.fsync_count += 1

    def lock(self, path: str) -> None:
        directory, name = self._split(path)
        self._dir(directory).setdefault(name, _Inode())

    def unlock(self, path: str) -> None:
        pass

    # -- helpers --------------------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        """Test helper: the current content of a file."""
        directory, name = self._split(path)
        return bytes(self._dir(directory)[name].data)

    def write_bytes(self, path: str, data: bytes, *, durable: bool = True) -> None:
        """Test helper: replace a file's content (to plant damage)."""
        directory, name = self._split(path)
        inode = self._dir(directory).setdefault(name, _Inode())
        inode.data = bytearray(data)
        if durable:
            inode.durable = bytes(data)

    def _dir(self, path: str) -> dict[str, _Inode]:
        entries = self._dirs.get(self._norm(path))
        if entries is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        return entries

    @staticmethod
    def _norm(path: str) -> str:
        return "/" + os.path.normpath(path).strip("/") if path not in ("", "/") else "/"

    def _split(self, path: str) -> tuple[str, str]:
        path = self._norm(path)
        directory, name = os.path.split(path)
        return directory or "/", name
