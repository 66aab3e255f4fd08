"""Share-partition state files written off the event loop, in order (KIP-932, issue 16).

Each version of a state is appended to the partition's side journal for it (one append and
one fsync: shoal.storage.journals), not written as a new whole file (temporary file, fsync,
rename, directory fsync) as before; :func:`read_stored` still reads a state file of that older
format when there is no journal yet (an upgrade); once a journal is written, it wins, and
the old file is removed after the journal's first write is durable.

An acknowledgement is answered only once a state that includes it is on disk (fsynced), but
the write and its fsync run on a worker thread: the event loop serves every other client's
requests meanwhile, as it does while the flusher fsyncs appends. One write per state file is
in flight at a time; requests that arrive meanwhile are covered by the next write, which takes
the newest state (a group commit, as for acks=all appends). So writes land in the order the
state changed, and a slow disk costs one write per round rather than one per acknowledgement.
A payload may be given as a function that makes it: it is called once, when the write starts
(or a reader asks), so a state rewritten whole is encoded once per write, not once per
acknowledgement that asked for one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from shoal.storage import PartitionLog

Payload: TypeAlias = bytes | Callable[[], bytes]
"""The file's new content, or a function (called on the event loop) that makes it."""

RunInThread: TypeAlias = Callable[[Callable[[], None]], Awaitable[None]]
"""Runs a blocking call on a worker thread (``asyncio.to_thread``); a seam for tests."""


async def _to_thread(call: Callable[[], None]) -> None:
    await asyncio.to_thread(call)


@dataclass(slots=True)
class _StateFile:
    plog: PartitionLog
    name: str
    payload: Payload = b""
    wanted_version: int = 0
    """The version of ``payload``, the newest state asked for."""
    written_version: int = 0
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    writer: asyncio.Task[None] | None = None


class ShareStateWriter:
    """Call :meth:`write` from the event loop; await the future it returns before answering."""

    def __init__(self, run_in_thread: RunInThread = _to_thread) -> None:
        self._run_in_thread = run_in_thread
        self._files: dict[tuple[str, str], _StateFile] = {}

    def write(self, plog: PartitionLog, name: str, payload: Payload) -> asyncio.Future[None]:
        """Replace side file ``name`` of ``plog`` with ``payload`` durably. The future is done
        once this payload or a newer one is fsynced, or fails with the write's exception
        (a :class:`shoal.storage.StorageError` for a disk that fails)."""
        loop = asyncio.get_running_loop()
        key = (plog.directory, name)
        state_file = self._files.get(key)
        if state_file is None:
            state_file = self._files[key] = _StateFile(plog, name)
        state_file.plog = plog  # a partition deleted and created again has a new log
        state_file.payload = payload
        state_file.wanted_version += 1
        done: asyncio.Future[None] = loop.create_future()
        state_file.waiters.append((state_file.wanted_version, done))
        if state_file.writer is None:
            state_file.writer = loop.create_task(self._write_until_current(key, state_file))
        return done

    async def _write_until_current(self, key: tuple[str, str], state_file: _StateFile) -> None:
        try:
            while state_file.written_version < state_file.wanted_version:
                version, payload, plog = (
                    state_file.wanted_version,
                    _made(state_file),
                    state_file.plog,
                )
                error: Exception | None = None
                try:
                    await self._run_in_thread(
                        functools.partial(plog.append_side_journal, state_file.name, payload)
                    )
                except Exception as exc:  # handed to every waiter this write covers
                    error = exc
                state_file.written_version = version
                covered = [w for w in state_file.waiters if w[0] <= version]
                state_file.waiters = [w for w in state_file.waiters if w[0] > version]
                for _, done in covered:
                    if done.done():
                        continue  # the request was cancelled (its connection closed)
                    if error is None:
                        done.set_result(None)
                    else:
                        done.set_exception(error)
        finally:
            state_file.writer = None
            if self._files.get(key) is state_file and not state_file.waiters:
                del self._files[key]

    def newest(self, plog: PartitionLog, name: str) -> bytes | None:
        """The newest payload asked for while its write is in flight or wanted (what the file
        will hold), else None: a reader must see a state written a moment ago, not the
        older one still on disk."""
        state_file = self._files.get((plog.directory, name))
        return None if state_file is None else _made(state_file)

    def writing(self, plog: PartitionLog, name: str) -> bool:
        """Whether a write of this file is in flight or wanted (it may not be on disk yet)."""
        return (plog.directory, name) in self._files

    @property
    def pending(self) -> int:
        """State files with a write in flight or wanted (0 after :meth:`drain`)."""
        return len(self._files)

    async def drain(self) -> None:
        """Finish every write asked for: call before the logs close."""
        while writers := [f.writer for f in self._files.values() if f.writer is not None]:
            await asyncio.gather(*writers, return_exceptions=True)


def read_stored(plog: PartitionLog, name: str) -> bytes | None:
    """The state on disk (blocking: call it off the event loop): the newest version in the
    side journal, else the whole side file that shoal wrote before it kept journals."""
    stored = plog.read_side_journal(name)
    return stored if stored is not None else plog.read_side_file(name)


def _made(state_file: _StateFile) -> bytes:
    """The file's payload as bytes, made now (and kept) if it was given as a function."""
    payload = state_file.payload
    if not isinstance(payload, bytes):
        payload = state_file.payload = payload()
    return payload
