"""Side journals: small state files that layers above storage replace often, at the cost of
one append and one fsync per version instead of a whole-file rewrite.

A side file (shoal.storage.sidefiles) is replaced by writing a temporary copy, fsyncing it,
renaming it over the old one and fsyncing the directory: two fsyncs and a new file per
version, which is what a state changed per acknowledgement cannot afford. A side journal
appends each version as a record, ``[length: u32][crc32c(payload): u32][payload]``, and
fsyncs that one file once; a reader takes the last whole record. A crash mid-append leaves
a torn last record (a prefix of it, or bytes whose CRC does not match), which a reader skips:
it gets the version before, the last one whose append returned. A journal that grew past
:data:`JOURNAL_MIN_COMPACT_BYTES` (and :data:`JOURNAL_COMPACT_RATIO` times the newest record)
is compacted: rewritten with the newest version alone, atomically (the old journal stays
whole until the rename). So is it on the first append of a process (and after a failed
append): what a crash left after the last whole record is never appended behind, where a
reader would stop before the new records. Like Kafka's ``__share_group_state`` (updates
appended, snapshots written now and then), in one file per state.

The journal is named after the side file it stands for, with :data:`JOURNAL_SUFFIX`; it
vanishes with the partition's directory. A side file of that name (the state's format before
its journal) is removed once the journal's first rewrite is durable (its fsync and its
directory's), and the removal fsynced: a crash in between leaves both, and readers take the
journal, which wins.
"""

from __future__ import annotations

import struct
from typing import Final

from shoal.records.crc import crc32c
from shoal.storage.errors import DiskFullError
from shoal.storage.fs import SPACE_ERRNOS, FileSystem, write_atomically
from shoal.storage.handles import FileHandles
from shoal.storage.sidefiles import SIDE_FILE_BYTES_MAX, side_file_path

JOURNAL_SUFFIX: Final = ".journal"
"""Not ``.log`` (a segment), ``.index``/``.timeindex`` or ``.tmp`` (which recovery removes)."""
JOURNAL_MIN_COMPACT_BYTES: Final = 1024 * 1024
"""A journal smaller than this is never compacted: a megabyte read on load costs little."""
JOURNAL_COMPACT_RATIO: Final = 8
"""Compacted once it holds this many times its newest record: the rewrite (two fsyncs) is then
paid once per that many appends at least."""
_HEADER: Final = struct.Struct(">II")
"""Record length (payload bytes) and the payload's CRC-32C."""


def journal_path(directory: str, name: str) -> str:
    return side_file_path(directory, name) + JOURNAL_SUFFIX


def encode_record(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), crc32c(payload)) + payload


def last_record(data: bytes) -> bytes | None:
    """The payload of the last whole record of journal bytes ``data``, reading from the start
    and stopping at the first torn or damaged record (nothing after one is trusted)."""
    position, newest = 0, None
    while position + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, position)
        start = position + _HEADER.size
        if length > SIDE_FILE_BYTES_MAX or start + length > len(data):
            break
        payload = data[start : start + length]
        if crc32c(payload) != crc:
            break
        newest, position = payload, start + length
    return newest


def read_journal(fs: FileSystem, directory: str, name: str) -> bytes | None:
    """The newest whole version in journal ``name``, or None when there is none. Lets
    ``OSError`` through."""
    path = journal_path(directory, name)
    if not fs.exists(path):
        return None
    f = fs.open(path)
    try:
        return last_record(f.pread(f.size(), 0))
    finally:
        f.close()


class Journals:
    """The side journals of one partition directory that this process appends to. Their files
    are opened through the log's bounded pool of open files (a journal per share group and
    partition would otherwise hold a descriptor each). Not thread-safe: the partition log
    calls it under its flush lock."""

    def __init__(self, fs: FileSystem, directory: str, handles: FileHandles) -> None:
        self._fs = fs
        self._directory = directory
        self._handles = handles
        self._sizes: dict[str, int] = {}
        """Per journal this process compacted since: its size, every byte a whole record."""

    def append(self, name: str, payload: bytes) -> None:
        """Make ``payload`` the newest version of journal ``name``, durably (fsynced) before
        returning. Raises :class:`DiskFullError` without space (the versions before stay) and
        lets other ``OSError``s through; after any failure the next append compacts."""
        if len(payload) > SIDE_FILE_BYTES_MAX:
            raise ValueError(f"side journal {name!r} of {len(payload)} bytes is over the limit")
        record = encode_record(payload)
        size = self._sizes.pop(name, None)  # back only once this append is whole and durable
        path = journal_path(self._directory, name)
        try:
            if size is None or _wants_compaction(size + len(record), len(record)):
                # The pool's handle would stay on the file the rename replaces.
                self._handles.close(path)
                write_atomically(self._fs, path, record)  # NoSpaceForCopy: ENOSPC
                self._remove_superseded(name)
                self._sizes[name] = len(record)
                return
            with self._handles.using(path) as f:
                f.append([record])
                f.fsync()
            self._sizes[name] = size + len(record)
        except OSError as exc:
            # A torn tail may follow the last whole record: the next append rewrites it all.
            if exc.errno in SPACE_ERRNOS:
                raise DiskFullError(f"no space to append to side journal {name}") from exc
            raise

    def _remove_superseded(self, name: str) -> None:
        """Remove the side file that journal ``name`` replaced, now that the journal is
        durable: it would otherwise sit next to the journal for ever (readers prefer the
        journal). Checked on each rewrite (the first append of a process is one), not on each
        append. The directory is fsynced so the removal outlives a power cut."""
        old = side_file_path(self._directory, name)
        if self._fs.exists(old):
            self._fs.remove(old)
            self._fs.fsync_dir(self._directory)

    def close(self) -> None:
        for name in list(self._sizes):
            self._handles.close(journal_path(self._directory, name))
        self._sizes.clear()


def _wants_compaction(size_after: int, record_bytes: int) -> bool:
    return size_after > max(JOURNAL_MIN_COMPACT_BYTES, JOURNAL_COMPACT_RATIO * record_bytes)
