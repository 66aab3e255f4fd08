"""The broker's KIP-932 share groups: each group's membership, its share-partitions (created
on first fetch where ``share.auto.offset.reset`` says) and its members' share sessions.

Share sessions as KIP-932 defines them: a ShareFetch with epoch 0 opens a member's session
(replacing an old one) with the partitions it names, a later request must carry the epoch the
last one was given (the epoch goes up by one per request, 1 after Integer.MAX_VALUE) and adds
partitions or forgets some, and epoch -1 closes it (acknowledgements only, no fetching).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from shoal.broker.share_state_writer import ShareStateWriter, read_stored
from shoal.clock import Clock
from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.group_configs import (
    READ_COMMITTED,
    SHARE_AUTO_OFFSET_RESET,
    SHARE_DELIVERY_COUNT_LIMIT,
    SHARE_HEARTBEAT_INTERVAL,
    SHARE_ISOLATION_LEVEL,
    SHARE_RECORD_LOCK_DURATION,
    SHARE_SESSION_TIMEOUT,
    effective,
    effective_text,
)
from shoal.coordinator.share_group import ShareGroup, ShareGroupSettings
from shoal.coordinator.share_offset_reset import (
    OffsetReset,
    initial_start_offset,
    parse_offset_reset,
)
from shoal.coordinator.share_partition import SharePartition, SharePartitionSettings
from shoal.coordinator.share_state import (
    decode_state,
    encode_deleted,
    encode_state,
    state_file_name,
)
from shoal.protocol import ApiKey, ErrorCode
from shoal.storage import PartitionLog, StorageError
from shoal.topic_partition import TopicPartition

SHARE_GROUP_APIS: Final = frozenset(
    {
        ApiKey.SHARE_GROUP_HEARTBEAT,
        ApiKey.SHARE_GROUP_DESCRIBE,
        ApiKey.SHARE_FETCH,
        ApiKey.SHARE_ACKNOWLEDGE,
        ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS,
        ApiKey.ALTER_SHARE_GROUP_OFFSETS,
        ApiKey.DELETE_SHARE_GROUP_OFFSETS,
    }
)
"""Served only at share.version 1 (GroupConfig.share_version)."""

INITIAL_EPOCH: Final = 0
FINAL_EPOCH: Final = -1
MAX_EPOCH: Final = 2**31 - 1


class ShareSessionError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class ShareSession:
    epoch: int = 1
    partitions: set[TopicPartition] = field(default_factory=set)
    connection_id: str = ""
    """The connection that opened it: only that connection's close ends it (a member that
    reopened its session on another connection keeps the new one when the old one closes,
    as Kafka 4.4's ShareSessionCache marks the old connection's entry stale)."""


def next_epoch(epoch: int) -> int:
    return 1 if epoch >= MAX_EPOCH else epoch + 1


class ShareGroups:
    def __init__(
        self,
        clock: Clock,
        group_settings: ShareGroupSettings | None = None,
        partition_settings: SharePartitionSettings | None = None,
        offset_reset: str = "latest",
        writer: ShareStateWriter | None = None,
    ) -> None:
        self.clock = clock
        self.writer = writer or ShareStateWriter()
        """Every state file write goes through it: off the event loop, in order."""
        self.group_settings = group_settings or ShareGroupSettings()
        self.partition_settings = partition_settings or SharePartitionSettings()
        self.offset_reset: OffsetReset = parse_offset_reset(offset_reset)
        self.groups: dict[str, ShareGroup] = {}
        self.partitions: dict[tuple[str, str, int], SharePartition] = {}
        self.sessions: dict[tuple[str, str], ShareSession] = {}
        self._opened_on: dict[str, tuple[str, str]] = {}
        """Per connection id, the (group, member) of the last share session it opened: as
        Kafka's ``ShareSessionCache.connectionIdToSessionMap``, so that its disconnect ends
        that session (see :meth:`connection_closed`)."""
        self._generations: dict[str, int] = {}
        """Per group, how many times a delete or reset replaced its share-partitions: a state
        file read begun before one is stale (see :meth:`load`)."""
        self._unwritten: set[tuple[str, str, int]] = set()
        """Share-partitions made afresh (where share.auto.offset.reset says) whose start is
        not on disk yet: nothing is acquired from them until it is (see :meth:`load`)."""
        self._initial_writes: dict[tuple[str, str, int], asyncio.Future[None]] = {}
        self._configs: Callable[[str], Mapping[str, str]] = lambda _group: {}
        self._base: GroupConfig | None = None
        self.wake: Callable[[str, int], None] = lambda _topic, _index: None
        """Called with a partition whose records a leaving member gave back: the broker wakes
        the ShareFetches parked on it (they would otherwise wait out their max_wait)."""

    def use_group_configs(
        self, configs: Callable[[str], Mapping[str, str]], base: GroupConfig
    ) -> None:
        """Where the per-group overrides (the GROUP config resource) are read: the share.*
        ones apply from a group's next heartbeat, fetch or acknowledgement on."""
        self._configs = configs
        self._base = base

    def _override(self, group_id: str) -> tuple[dict[str, int], str]:
        if self._base is None:
            return {}, ""
        overrides = self._configs(group_id)
        return effective(overrides, self._base), effective_text(
            overrides, self._base, SHARE_AUTO_OFFSET_RESET
        )

    def _settings(self, group_id: str) -> tuple[ShareGroupSettings, SharePartitionSettings]:
        values, _ = self._override(group_id)
        if not values:
            return self.group_settings, self.partition_settings
        return (
            ShareGroupSettings(values[SHARE_SESSION_TIMEOUT], values[SHARE_HEARTBEAT_INTERVAL]),
            SharePartitionSettings(
                values[SHARE_RECORD_LOCK_DURATION],
                values[SHARE_DELIVERY_COUNT_LIMIT],
                self.partition_settings.max_record_locks,
            ),
        )

    def group(self, group_id: str) -> ShareGroup:
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = ShareGroup(group_id, self.clock, self.group_settings)
        group.settings = self._settings(group_id)[0]
        return group

    def read_committed(self, group_id: str) -> bool:
        """Whether the group's share fetches read committed records only
        (``share.isolation.level``): up to the last stable offset, aborted records archived."""
        if self._base is None:
            return False
        overrides = self._configs(group_id)
        return effective_text(overrides, self._base, SHARE_ISOLATION_LEVEL) == READ_COMMITTED

    def lock_duration_ms(self, group_id: str) -> int:
        return self._settings(group_id)[1].record_lock_duration_ms

    def expire(self, group_id: str) -> None:
        """Members past their session timeout leave; their records are released."""
        group = self.groups.get(group_id)
        if group is None:
            return
        for member_id in group.expire_sessions():
            self.member_left(group_id, member_id)

    def member_left(self, group_id: str, member_id: str) -> None:
        self.sessions.pop((group_id, member_id), None)
        for (g, topic, index), sp in self.partitions.items():
            if g == group_id and sp.release_member(member_id):
                self.wake(topic, index)

    def release_session(
        self, group_id: str, member_id: str, partitions: Iterable[TopicPartition]
    ) -> None:
        """A share session closed (epoch -1): what the member holds of its partitions is
        Available again at once, as Kafka 4.4's ``SharePartitionManager.releaseSession``
        releases it, rather than locked until the acquisition lock times out."""
        for topic, index in partitions:
            sp = self.partitions.get((group_id, topic, index))
            if sp is not None and sp.release_member(member_id):
                self.wake(topic, index)

    def connection_closed(self, connection_id: str) -> None:
        """The client connection ``connection_id`` is gone: the share session it opened last,
        if still open, ends and its member's records of the session's partitions are
        Available again at once (parked fetches woken), as Kafka 4.4's disconnect listener
        ends it (``ShareSessionCache.maybeRemoveAndNotifyListeners`` → ``releaseSession``),
        rather than locked until the acquisition lock or the member's session times out.
        The member stays in the group: membership is the heartbeat's."""
        key = self._opened_on.pop(connection_id, None)
        if key is None:
            return
        session = self.sessions.get(key)
        if session is not None and session.connection_id == connection_id:
            del self.sessions[key]
            self.release_session(key[0], key[1], session.partitions)

    def share_partition(
        self, group_id: str, topic: str, index: int, plog: PartitionLog
    ) -> SharePartition:
        """The group's share-partition, which :meth:`load` brought into memory: callers await
        it first, with no await in between (a state file is never read on the event loop)."""
        key = (group_id, topic, index)
        sp = self.partitions.get(key)
        if sp is None:
            raise RuntimeError(f"share-partition {key} used before ShareGroups.load")
        sp.settings = self._settings(group_id)[1]  # a changed group config applies from now on
        if plog.log_start_offset > sp.start_offset:
            sp.skip_to(plog.log_start_offset)  # retention deleted records still in flight
        return sp

    async def load(self, group_id: str, parts: Iterable[tuple[str, int, PartitionLog]]) -> None:
        """Bring the group's share-partitions of ``parts`` into memory, their state files read
        off the event loop (as the writes are): the first touch of a partition since the
        broker started, or since its state was deleted, reads the disk (a write not yet on
        disk, such as a DeleteShareGroupOffsets tombstone, is taken from memory). Once it
        returns, every one of ``parts`` is in memory. A read that a delete or a reset of the
        group overtook is dropped and done again: memory and the tombstones are newer. A
        share-partition made afresh has its state written (fsynced) before it returns."""
        # In partition order: the new states' writes start in it, whatever order (a set's,
        # by string hash) the caller had.
        wanted = sorted(parts, key=lambda part: (part[0], part[1]))
        while True:
            todo = wanted
            while todo:
                todo = self._install_pending(group_id, todo)
                if not todo:
                    break
                generation = self._generations.get(group_id, 0)
                stored = await self._read_off_loop(group_id, [plog for *_, plog in todo])
                if self._generations.get(group_id, 0) != generation:
                    continue  # deleted or reset meanwhile: read again
                for (topic, index, plog), raw in zip(todo, stored, strict=True):
                    key = (group_id, topic, index)
                    if key not in self.partitions:  # else made meanwhile (a fetch): newer
                        self.partitions[key] = self._new(key, plog, raw)
                todo = []
            await self._write_initial(group_id, wanted)
            if all((group_id, topic, index) in self.partitions for topic, index, _ in wanted):
                return  # else deleted while the new states were written: again

    def _install_pending(
        self, group_id: str, parts: list[tuple[str, int, PartitionLog]]
    ) -> list[tuple[str, int, PartitionLog]]:
        """Of ``parts`` not in memory, install those whose state write is pending (from
        memory); the rest, whose state is on disk or nowhere, are returned."""
        name = state_file_name(group_id)
        rest = []
        for topic, index, plog in parts:
            key = (group_id, topic, index)
            if key in self.partitions:
                continue
            pending = self.writer.newest(plog, name)
            if pending is not None:
                self.partitions[key] = self._new(key, plog, pending)
            else:
                rest.append((topic, index, plog))
        return rest

    async def _write_initial(
        self, group_id: str, parts: Iterable[tuple[str, int, PartitionLog]]
    ) -> None:
        """Write the state of the share-partitions of ``parts`` that were made afresh and are
        not on disk yet, and wait for it (fsynced), as Kafka 4.4 initializes a share-partition's
        state durably (InitializeShareGroupState) before it is fetched: a record delivered and
        not acknowledged before a crash must come back after it, not be skipped by a start
        made again at the new log end. A write that fails leaves the partition unwritten
        (:meth:`start_durable` False, nothing acquired); the next load tries again."""
        waits = []
        for topic, index, plog in parts:
            key = (group_id, topic, index)
            if key not in self._unwritten:
                continue
            pending = self._initial_writes.get(key)
            if pending is None:
                written = self.persist(group_id, topic, index, plog)
                if written is None:
                    self._unwritten.discard(key)
                    continue
                pending = self._initial_writes[key] = written
                sp = self.partitions.get(key)
                written.add_done_callback(functools.partial(self._initial_written, key, sp))
            waits.append(pending)
        for pending in waits:
            with contextlib.suppress(StorageError):
                await asyncio.shield(pending)

    def _initial_written(
        self,
        key: tuple[str, str, int],
        sp: SharePartition | None,
        done: asyncio.Future[None],
    ) -> None:
        self._initial_writes.pop(key, None)
        if not done.cancelled() and done.exception() is None and self.partitions.get(key) is sp:
            self._unwritten.discard(key)

    def start_durable(self, group_id: str, topic: str, index: int) -> bool:
        """Whether the share-partition's state is on disk (or being rewritten over one that
        is): records may be acquired from it."""
        return (group_id, topic, index) not in self._unwritten

    async def _read_off_loop(self, group_id: str, plogs: list[PartitionLog]) -> list[bytes | None]:
        name = state_file_name(group_id)
        return await asyncio.to_thread(lambda: [read_stored(plog, name) for plog in plogs])

    async def described(
        self, group_id: str, parts: Iterable[tuple[str, int, PartitionLog]]
    ) -> dict[tuple[str, int], SharePartition]:
        """DescribeShareGroupOffsets: the group's share-partitions of ``parts`` that have state
        (in memory, being written, or on disk, read off the event loop); a partition with
        none is left out and not made (a describe does not start a partition)."""
        todo = list(parts)
        while True:
            found = {}
            unread = []
            name = state_file_name(group_id)
            for topic, index, plog in todo:
                sp = self.partitions.get((group_id, topic, index))
                pending = self.writer.newest(plog, name) if sp is None else None
                if sp is None and pending is not None:
                    sp = self._restore(group_id, pending)
                if sp is not None:
                    found[(topic, index)] = sp
                elif pending is None:
                    unread.append((topic, index, plog))
            if not unread:
                return found
            generation = self._generations.get(group_id, 0)
            stored = await self._read_off_loop(group_id, [plog for *_, plog in unread])
            if self._generations.get(group_id, 0) != generation:
                continue  # deleted or reset meanwhile: look again
            for (topic, index, _plog), raw in zip(unread, stored, strict=True):
                key = (group_id, topic, index)
                sp = self.partitions.get(key)
                if sp is None:
                    sp = self._restore(group_id, raw)
                    if sp is not None:
                        self.partitions[key] = sp  # kept, as a fetch's load would
                if sp is not None:
                    found[(topic, index)] = sp
            return found

    def _new(
        self, key: tuple[str, str, int], plog: PartitionLog, stored: bytes | None
    ) -> SharePartition:
        """The share-partition as ``stored`` (its state file) says, else starting where
        share.auto.offset.reset says (then its state is to be written: see :meth:`load`)."""
        group_id = key[0]
        recovered = self._restore(group_id, stored)
        if recovered is not None:
            return recovered
        self._unwritten.add(key)
        reset_text = self._override(group_id)[1]
        reset = parse_offset_reset(reset_text) if reset_text else self.offset_reset
        start = initial_start_offset(
            reset,
            plog.log_start_offset,
            plog.log_end_offset,
            self.clock.now_ms(),
            lambda _ts: None,  # by_duration without a time index: from the log end
        )
        return SharePartition(self.clock, self._settings(group_id)[1], start)

    def _restore(self, group_id: str, raw: bytes | None) -> SharePartition | None:
        if raw is None:
            return None
        try:
            state = decode_state(group_id, raw)
            if state is None:
                return None  # the group was deleted since
            return SharePartition.restore(self.clock, self.partition_settings, state)
        except ValueError:
            # Not this group's (a name collision) or damaged: start where offset reset says.
            return None

    def persist(
        self, group_id: str, topic: str, index: int, plog: PartitionLog
    ) -> asyncio.Future[None] | None:
        """Start writing the share-partition's state (fsynced, on a worker thread): await
        the future before answering the acknowledgement that changed it; it fails with a
        StorageError when the state cannot be written. None when there is no state."""
        sp = self.partitions.get((group_id, topic, index))
        if sp is None:
            return None
        # Encoded when the write starts: acknowledgements that arrive while one is in flight
        # share the next write, and the state (up to max_record_locks records) is encoded
        # once for them all.
        return self.writer.write(
            plog, state_file_name(group_id), lambda: encode_state(group_id, sp.snapshot())
        )

    async def delete(self, group_id: str, plogs: Iterable[PartitionLog]) -> ErrorCode | None:
        """DeleteGroups of a share group: None when ``group_id`` is no share group here,
        NON_EMPTY_GROUP while it has members, else its state is gone (memory and disk)."""
        name = state_file_name(group_id)
        candidates = list(plogs)
        # Reading every partition's directory is disk work: off the event loop too.
        writing = [plog for plog in candidates if self.writer.writing(plog, name)]
        others = [plog for plog in candidates if not self.writer.writing(plog, name)]
        on_disk = writing + await asyncio.to_thread(
            lambda: [plog for plog in others if read_stored(plog, name) is not None]
        )
        group = self.groups.get(group_id)  # as it is now, after the scan
        if group is None and not on_disk:
            return None
        if group is not None and group.members:
            return ErrorCode.NON_EMPTY_GROUP
        self.groups.pop(group_id, None)
        self._replaced(group_id)
        for partition_key in [k for k in self.partitions if k[0] == group_id]:
            del self.partitions[partition_key]
        self._unwritten = {k for k in self._unwritten if k[0] != group_id}
        for session_key in [k for k in self.sessions if k[0] == group_id]:
            del self.sessions[session_key]
        writes = [self.writer.write(plog, name, encode_deleted(group_id)) for plog in on_disk]
        if writes:
            await asyncio.gather(*writes)
        return ErrorCode.NONE

    def reset(
        self, group_id: str, topic: str, index: int, plog: PartitionLog, start: int
    ) -> asyncio.Future[None] | None:
        """AlterShareGroupOffsets: the partition starts afresh at ``start`` now; await the
        returned write before answering. Not a coroutine, so that a request resetting many
        partitions changes them all with no await in between (no member can join and fetch
        half-way through, after the request found the group empty)."""
        self.group(group_id)  # an admin may create the (empty) group this way, as in Kafka
        settings = self._settings(group_id)[1]
        self._replaced(group_id)
        self.partitions[(group_id, topic, index)] = SharePartition(self.clock, settings, start)
        self._unwritten.discard((group_id, topic, index))  # written now, answered once durable
        return self.persist(group_id, topic, index, plog)

    def _replaced(self, group_id: str) -> None:
        self._generations[group_id] = self._generations.get(group_id, 0) + 1

    async def with_state(
        self, group_id: str, plogs: Iterable[tuple[str, int, PartitionLog]]
    ) -> set[tuple[str, int]]:
        """The (topic, partition) of ``plogs`` with a state file of the group on disk or being
        written; the directories are read off the event loop."""
        name = state_file_name(group_id)
        candidates = list(plogs)
        found = {(t, i) for t, i, plog in candidates if self.writer.writing(plog, name)}
        others = [(t, i, plog) for t, i, plog in candidates if (t, i) not in found]
        found |= await asyncio.to_thread(
            lambda: {(t, i) for t, i, plog in others if read_stored(plog, name) is not None}
        )
        return found

    def forget(
        self, group_id: str, topic: str, index: int, plog: PartitionLog, on_disk: bool
    ) -> asyncio.Future[None] | None:
        """DeleteShareGroupOffsets: the partition's state goes now (a later fetch starts where
        share.auto.offset.reset says); await the returned tombstone write (None when there was
        no state file) before answering. Not a coroutine, as :meth:`reset`: a request forgets
        every partition with no await in between, once it found the group empty."""
        self._replaced(group_id)
        self.partitions.pop((group_id, topic, index), None)
        self._unwritten.discard((group_id, topic, index))
        if not on_disk:
            return None
        return self.writer.write(plog, state_file_name(group_id), encode_deleted(group_id))

    def session(
        self,
        group_id: str,
        member_id: str,
        epoch: int,
        added: set[TopicPartition],
        forgotten: set[TopicPartition],
        connection_id: str = "",
    ) -> ShareSession | None:
        """The session this request belongs to, updated; None when the request closes it.
        ``connection_id``: the client connection the request came on (a session opened on it
        ends when it closes; "" for none)."""
        key = (group_id, member_id)
        if epoch == INITIAL_EPOCH:
            replaced = self.sessions.get(key)
            if replaced is not None and replaced.connection_id != connection_id:
                self._opened_on.pop(replaced.connection_id, None)
            session = self.sessions[key] = ShareSession(1, set(added), connection_id)
            if connection_id:
                self._opened_on[connection_id] = key
            return session
        existing = self.sessions.get(key)
        if existing is None:
            raise ShareSessionError(
                ErrorCode.SHARE_SESSION_NOT_FOUND, f"Share session for member {member_id} not found"
            )
        if epoch == FINAL_EPOCH:
            del self.sessions[key]
            if self._opened_on.get(existing.connection_id) == key:
                del self._opened_on[existing.connection_id]
            return None
        if epoch != existing.epoch:
            raise ShareSessionError(
                ErrorCode.INVALID_SHARE_SESSION_EPOCH,
                f"Share session epoch {epoch} is not the expected {existing.epoch}",
            )
        existing.partitions |= added
        existing.partitions -= forgotten
        existing.epoch = next_epoch(existing.epoch)
        return existing
