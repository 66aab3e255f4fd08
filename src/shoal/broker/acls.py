"""The broker's ACLs: the authorizer's decisions for handlers, and the changes CreateAcls and
DeleteAcls make, kept durable before they count.

Every change is saved (the whole set, atomically) before the authorizer in memory sees it: a
failed save changes nothing, and a crash after the save leaves the new set on disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shoal.protocol import ErrorCode
from shoal.security.acl import AclBinding, AclBindingFilter, AclError, validate_binding
from shoal.security.acl_authorizer import Authorizer, AuthorizerConfig
from shoal.security.acl_store import AclStore
from shoal.security.scram_store import INTERNAL_PRINCIPAL
from shoal.storage.fs import FileSystem

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AclOutcome:
    """One creation's or one deletion filter's result: Kafka's error code and message."""

    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None
    bindings: tuple[AclBinding, ...] = ()
    """For a deletion filter: the ACLs it removed."""


def _failed_save(exc: OSError) -> AclOutcome:
    return AclOutcome(ErrorCode.KAFKA_STORAGE_ERROR, f"could not save the ACLs: {exc}")


class BrokerAcls:
    def __init__(self, fs: FileSystem, data_dir: str, config: AuthorizerConfig) -> None:
        self._store = AclStore(fs, data_dir)
        # shoal's own clients (the schema registry) log in as the internal user, whose password
        # only this process holds: they may do anything, whatever the ACLs say.
        internal = replace(config, super_users=config.super_users | {INTERNAL_PRINCIPAL})
        self.authorizer = Authorizer(internal, self._store.load())
        log.info(
            "authorizer on: %d ACLs loaded, super users %s, allow everyone if no ACL found: %s",
            len(self.authorizer),
            sorted(config.super_users) or "none",
            config.allow_everyone_if_no_acl_found,
        )
        self._changing = asyncio.Lock()
        self._unfinished: set[asyncio.Task[list[AclOutcome]]] = set()

    async def _to_the_end(self, change: Coroutine[Any, Any, list[AclOutcome]]) -> list[AclOutcome]:
        """Run a change to its end even when the caller is cancelled (its client went away
        mid-save): the save on the worker thread finishes anyway, so the in-memory apply after
        it must too, or memory and disk disagree until the next change writes memory's set
        back over the saved one."""
        task = asyncio.ensure_future(change)
        self._unfinished.add(task)
        task.add_done_callback(self._unfinished.discard)
        return await asyncio.shield(task)

    def create(self, creations: Sequence[AclBinding]) -> list[AclOutcome]:
        """Add the valid bindings (each invalid one gets INVALID_REQUEST with Kafka's
        message); an ACL already present succeeds again. Saves on the calling thread: for
        callers with no event loop to keep free (tools, tests); the server uses
        :meth:`create_off_loop`."""
        outcomes, new = self._plan_create(creations)
        if not new:
            return outcomes
        return self._commit_create(outcomes, new, self._save([*self.authorizer, *new]))

    async def create_off_loop(self, creations: Sequence[AclBinding]) -> list[AclOutcome]:
        """:meth:`create`, with the save (a file write and an fsync) on a worker thread, so
        the event loop the Kafka listener shares keeps answering meanwhile. Changes are made
        one at a time (planned, saved, then applied on the loop, where the authorizer is
        read), so two of them never save sets that miss each other's ACLs."""
        return await self._to_the_end(self._create_off_loop(creations))

    async def _create_off_loop(self, creations: Sequence[AclBinding]) -> list[AclOutcome]:
        async with self._changing:
            outcomes, new = self._plan_create(creations)
            if not new:
                return outcomes
            failure = await asyncio.to_thread(self._save, [*self.authorizer, *new])
            return self._commit_create(outcomes, new, failure)

    def delete(self, filters: Sequence[AclBindingFilter]) -> list[AclOutcome]:
        """Remove the ACLs each filter matches; a filter with an UNKNOWN part gets
        INVALID_REQUEST ("Unknown patternFilter." as Kafka says) and removes nothing. Saves on
        the calling thread, as :meth:`create` does; the server uses :meth:`delete_off_loop`."""
        outcomes, gone = self._plan_delete(filters)
        if not gone:
            return outcomes
        kept = [b for b in self.authorizer if b not in gone]
        return self._commit_delete(outcomes, gone, self._save(kept))

    async def delete_off_loop(self, filters: Sequence[AclBindingFilter]) -> list[AclOutcome]:
        """:meth:`delete` with the save on a worker thread (see :meth:`create_off_loop`)."""
        return await self._to_the_end(self._delete_off_loop(filters))

    async def _delete_off_loop(self, filters: Sequence[AclBindingFilter]) -> list[AclOutcome]:
        async with self._changing:
            outcomes, gone = self._plan_delete(filters)
            if not gone:
                return outcomes
            kept = [b for b in self.authorizer if b not in gone]
            failure = await asyncio.to_thread(self._save, kept)
            return self._commit_delete(outcomes, gone, failure)

    def _plan_create(
        self, creations: Sequence[AclBinding]
    ) -> tuple[list[AclOutcome], list[AclBinding]]:
        outcomes: list[AclOutcome] = []
        valid: list[AclBinding] = []
        for creation in creations:
            try:
                validate_binding(creation)
            except AclError as exc:
                outcomes.append(AclOutcome(ErrorCode.INVALID_REQUEST, str(exc)))
                continue
            valid.append(creation)
            outcomes.append(AclOutcome())
        return outcomes, [b for b in dict.fromkeys(valid) if b not in self.authorizer]

    def _commit_create(
        self, outcomes: list[AclOutcome], new: list[AclBinding], failure: AclOutcome | None
    ) -> list[AclOutcome]:
        if failure is not None:
            return [failure if o.error_code == ErrorCode.NONE else o for o in outcomes]
        self.authorizer.add(new)
        log.info("ACLs added: %s", new)
        return outcomes

    def _plan_delete(
        self, filters: Sequence[AclBindingFilter]
    ) -> tuple[list[AclOutcome], dict[AclBinding, None]]:
        outcomes: list[AclOutcome] = []
        gone: dict[AclBinding, None] = {}
        for matching in filters:
            unknown = matching.unknown_part()
            if unknown is not None:
                outcomes.append(AclOutcome(ErrorCode.INVALID_REQUEST, f"Unknown {unknown}."))
                continue
            removed = tuple(self.authorizer.acls(matching))
            gone.update(dict.fromkeys(removed))
            outcomes.append(AclOutcome(bindings=removed))
        return outcomes, gone

    def _commit_delete(
        self, outcomes: list[AclOutcome], gone: dict[AclBinding, None], failure: AclOutcome | None
    ) -> list[AclOutcome]:
        if failure is not None:
            return [failure if o.error_code == ErrorCode.NONE else o for o in outcomes]
        self.authorizer.remove(gone)
        log.info("ACLs removed: %s", list(gone))
        return outcomes

    def _save(self, bindings: list[AclBinding]) -> AclOutcome | None:
        """Write the whole set (blocking); the failure every change gets, or None."""
        try:
            self._store.save(bindings)
        except OSError as exc:
            return _failed_save(exc)
        return None

    def describe(self, matching: AclBindingFilter) -> list[AclBinding]:
        return self.authorizer.acls(matching)
