"""The client quota configs (Kafka's ``/config/users``, ``/config/clients``, ``/config/ips``),
kept in the data directory and changed by AlterClientQuotas.

``client-quotas.json`` holds every entity that has at least one quota:

    {"version": 1, "entities": [{"entity": {"user": "alice", "client-id": null},
                                 "quotas": {"producer_byte_rate": 1048576.0}}]}

(a ``null`` name is the type's default entity). It is replaced atomically on every change
(temporary file, fsync, rename, directory fsync), so a crash leaves the old or the new set. A
damaged file stops the broker with a message rather than starting with no quotas, which would
silently lift every limit an operator set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from shoal.security.quota_entity import (
    QuotaEntity,
    QuotaFilter,
    QuotaRequestError,
    check_value,
    checked_entity,
    checked_ops,
    keys_for,
)
from shoal.storage.documents import DocumentDamaged, read_document, write_document
from shoal.storage.fs import FileSystem

log = logging.getLogger(__name__)

QUOTAS_FILE: Final = "client-quotas.json"
_VERSION: Final = 1
QUOTA_ENTITIES_MAX: Final = 100_000
"""Entities with quotas, at most: each is held in memory and rewritten with the file, and an
operator sets quotas on users and client ids, not on every connection."""


class QuotaConfigsDamaged(DocumentDamaged):
    """client-quotas.json cannot be read; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Alteration:
    """One entry of an AlterClientQuotas request: the entity as sent, and its operations
    (key, value; ``None`` removes the key)."""

    entity: Sequence[tuple[str, str | None]]
    ops: Sequence[tuple[str, float | None]]


@dataclass(frozen=True, slots=True)
class AlterationResult:
    entity: Sequence[tuple[str, str | None]]
    error: QuotaRequestError | None


class QuotaStore:
    def __init__(self, fs: FileSystem, data_dir: str) -> None:
        self._fs = fs
        self._path = os.path.join(data_dir, QUOTAS_FILE)
        self._entities: dict[QuotaEntity, dict[str, float]] = {}
        self._by_key: dict[str, dict[QuotaEntity, float]] = {}
        self.generation = 0
        """Bumped on every change, so that caches of resolved quotas know to look again."""
        if fs.exists(self._path):
            self._load()

    def _load(self) -> None:
        try:
            doc = read_document(self._fs, self._path, version=_VERSION) or {"entities": []}
            entities: dict[QuotaEntity, dict[str, float]] = {}
            for item in doc["entities"]:
                entity = checked_entity(list(item["entity"].items()))
                keys = keys_for(entity)
                quotas = {str(key): float(value) for key, value in item["quotas"].items()}
                for key, value in quotas.items():
                    check_value(keys, key, value)
                if quotas:
                    entities[entity] = quotas
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise QuotaConfigsDamaged(
                f"{self._path} cannot be used ({exc}); fix it, or remove it to run with no "
                "client quotas"
            ) from exc
        self._set(entities)

    def _set(self, entities: dict[QuotaEntity, dict[str, float]]) -> None:
        self._entities = entities
        by_key: dict[str, dict[QuotaEntity, float]] = {}
        for entity, quotas in entities.items():
            for key, value in quotas.items():
                by_key.setdefault(key, {})[entity] = value
        self._by_key = by_key
        self.generation += 1

    def values_of(self, key: str) -> Mapping[QuotaEntity, float]:
        """Every entity's value of one quota key (empty when no entity sets it)."""
        return self._by_key.get(key, {})

    def describe(self, quota_filter: QuotaFilter) -> list[tuple[QuotaEntity, Mapping[str, float]]]:
        return [
            (entity, quotas)
            for entity, quotas in self._entities.items()
            if quota_filter.matches(entity)
        ]

    def alter(
        self, alterations: Sequence[Alteration], *, validate_only: bool = False
    ) -> list[AlterationResult]:
        """Apply each entity's changes unless Kafka refuses them (the others still apply), all
        saved in one atomic write; one result per distinct entity, in request order.

        Nothing changes when ``validate_only``, or when the save fails (it raises).
        """
        entities = {entity: dict(quotas) for entity, quotas in self._entities.items()}
        results: dict[QuotaEntity | int, AlterationResult] = {}
        seen: set[QuotaEntity] = set()
        for index, alteration in enumerate(alterations):
            try:
                entity = checked_entity(alteration.entity)
            except QuotaRequestError as exc:
                results[index] = AlterationResult(alteration.entity, exc)
                continue
            if entity in seen:
                # As Kafka: one answer per entity, an error, though the changes of its first
                # occurrence stay applied (Kafka's controller keeps their records).
                results[entity] = AlterationResult(
                    alteration.entity, QuotaRequestError(f"Ignoring duplicate entity {entity}")
                )
                continue
            seen.add(entity)
            try:
                changes = checked_ops(entity, alteration.ops)
            except QuotaRequestError as exc:
                results[entity] = AlterationResult(alteration.entity, exc)
                continue
            quotas = entities.get(entity, {})
            for key, value in changes.items():
                if value is None:
                    quotas.pop(key, None)
                else:
                    quotas[key] = value
            if quotas:
                entities[entity] = quotas
            else:
                entities.pop(entity, None)
            results[entity] = AlterationResult(alteration.entity, None)
        if len(entities) > QUOTA_ENTITIES_MAX and len(entities) > len(self._entities):
            error = QuotaRequestError(
                f"shoal keeps quotas for at most {QUOTA_ENTITIES_MAX} entities; remove some "
                "before adding more"
            )
            return [AlterationResult(r.entity, r.error or error) for r in results.values()]
        if not validate_only and entities != self._entities:
            self._save(entities)
            self._set(entities)
            log.info("client quotas changed: %d entities have quotas", len(entities))
        return list(results.values())

    def _save(self, entities: Mapping[QuotaEntity, Mapping[str, float]]) -> None:
        body = {
            "entities": [
                {"entity": dict(entity.parts), "quotas": dict(sorted(quotas.items()))}
                for entity, quotas in sorted(entities.items(), key=lambda item: str(item[0]))
            ],
        }
        write_document(self._fs, self._path, body, version=_VERSION)
