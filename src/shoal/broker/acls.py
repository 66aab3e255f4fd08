"""The broker's ACLs: the authorizer's decisions for handlers, and the changes CreateAcls and
DeleteAcls make, kept durable before they count.

Every change is saved (the whole set, atomically) before the authorizer in memory sees it: a
failed save changes nothing, and a crash after the save leaves the new set on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

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

    def create(self, creations: Sequence[AclBinding]) -> list[AclOutcome]:
        """Add the valid bindings (each invalid one gets INVALID_REQUEST with Kafka's
        message); an ACL already present succeeds again."""
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
        new = [b for b in dict.fromkeys(valid) if b not in self.authorizer]
        if new:
            try:
                self._store.save([*self.authorizer, *new])
            except OSError as exc:
                failed = _failed_save(exc)
                return [failed if o.error_code == ErrorCode.NONE else o for o in outcomes]
            self.authorizer.add(new)
            log.info("ACLs added: %s", new)
        return outcomes

    def delete(self, filters: Sequence[AclBindingFilter]) -> list[AclOutcome]:
        """Remove the ACLs each filter matches; a filter with an UNKNOWN part gets
        INVALID_REQUEST ("Unknown patternFilter." as Kafka says) and removes nothing."""
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
        if gone:
            try:
                self._store.save([b for b in self.authorizer if b not in gone])
            except OSError as exc:
                failed = _failed_save(exc)
                return [failed if o.error_code == ErrorCode.NONE else o for o in outcomes]
            self.authorizer.remove(gone)
            log.info("ACLs removed: %s", list(gone))
        return outcomes

    def describe(self, matching: AclBindingFilter) -> list[AclBinding]:
        return self.authorizer.acls(matching)
