"""The registry's state, and the records of the ``_schemas`` topic that rebuild it.

Every change is one record; the state is a pure fold over the records (:meth:`RegistryState.apply`),
so replaying the topic at start gives back exactly the state that was served before a restart.
Keys identify the thing a record describes (a subject version, a config, a mode), so log
compaction keeps only the newest record per thing and a tombstone (null value) forgets it.

Record layouts (JSON, keys serialised with sorted keys so equal keys are equal bytes)::

    key {"keytype": "SCHEMA", "subject": s, "version": v, "magic": 1}
    val {"subject": s, "version": v, "id": n, "schemaType": t, "schema": text,
         "references": [{"name", "subject", "version"}], "deleted": bool}   (null: hard delete)
    key {"keytype": "CONFIG", "subject": s | null, "magic": 0}
    val {"compatibilityLevel": level, "normalize": bool}   (each optional; null: unset)
    key {"keytype": "MODE", "subject": s | null, "magic": 0}
    val {"mode": mode}                                                      (null: unset)
    key {"keytype": "ID_WATERMARK", "magic": 0}
    val {"max_id": n}
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from shoal.invariant import invariant

COMPATIBILITY_LEVELS: Final = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)
DEFAULT_COMPATIBILITY: Final = "BACKWARD"
CONFIG_FIELDS: Final = ("compatibilityLevel", "normalize")
MODES: Final = ("READWRITE", "READONLY", "IMPORT")
DEFAULT_MODE: Final = "READWRITE"
SCHEMA_TYPES: Final = ("AVRO", "JSON", "PROTOBUF")


@dataclass(frozen=True)
class SchemaReference:
    """A named dependency on another subject's version (an Avro named type, a JSON ``$ref``
    target, a Protobuf import)."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True)
class SchemaVersion:
    subject: str
    version: int
    schema_id: int
    schema_type: str
    schema: str
    references: tuple[SchemaReference, ...] = ()
    deleted: bool = False


def schema_guid(schema: str, references: tuple[SchemaReference, ...]) -> str:
    """Confluent's globally unique id of a schema: the MD5 of its text and its references
    (name, subject, version as 4 big-endian bytes), written as a UUID. Derived, not stored,
    so every registry holding the same schema names it the same way."""
    digest = hashlib.md5(schema.encode(), usedforsecurity=False)
    for ref in references:
        digest.update(ref.name.encode())
        digest.update(ref.subject.encode())
        digest.update(ref.version.to_bytes(4, "big", signed=True))
    return str(uuid.UUID(bytes=digest.digest()))


@dataclass(frozen=True)
class StoredSchema:
    """What a global id names: the schema text and type, independent of subjects."""

    schema_id: int
    schema_type: str
    schema: str
    references: tuple[SchemaReference, ...]
    canonical: str

    @property
    def guid(self) -> str:
        return schema_guid(self.schema, self.references)


@dataclass
class RegistryState:
    subjects: dict[str, dict[int, SchemaVersion]] = field(default_factory=dict)
    schemas: dict[int, StoredSchema] = field(default_factory=dict)
    # The identity used to give an identical schema the same id in every subject.
    ids_by_identity: dict[tuple[str, str, tuple[SchemaReference, ...]], int] = field(
        default_factory=dict
    )
    ids_by_guid: dict[str, int] = field(default_factory=dict)
    # Per subject (None: global) the config fields that were set: compatibilityLevel, normalize.
    configs: dict[str | None, dict[str, Any]] = field(default_factory=dict)
    modes: dict[str | None, str] = field(default_factory=dict)
    max_id: int = 0

    # ----------------------------------------------------------------- reads

    def versions(self, subject: str, *, include_deleted: bool) -> list[SchemaVersion]:
        found = self.subjects.get(subject, {})
        return [v for _, v in sorted(found.items()) if include_deleted or not v.deleted]

    def live_subjects(self, *, include_deleted: bool) -> list[str]:
        return sorted(s for s in self.subjects if self.versions(s, include_deleted=include_deleted))

    def config_field(self, subject: str | None, name: str, default: Any) -> Any:
        """A config field: the subject's if it set it, else the global one, else ``default``."""
        for scope in (subject, None) if subject is not None else (None,):
            value = self.configs.get(scope, {}).get(name)
            if value is not None:
                return value
        return default

    def compatibility(self, subject: str | None) -> str:
        return str(self.config_field(subject, "compatibilityLevel", DEFAULT_COMPATIBILITY))

    def normalize(self, subject: str | None) -> bool:
        return bool(self.config_field(subject, "normalize", False))

    def mode(self, subject: str | None) -> str:
        if subject is not None and subject in self.modes:
            return self.modes[subject]
        return self.modes.get(None, DEFAULT_MODE)

    def referenced_by(self, subject: str, version: int) -> list[int]:
        """Ids of live schema versions that reference ``subject`` at ``version``."""
        ids = {
            sv.schema_id
            for versions in self.subjects.values()
            for sv in versions.values()
            if not sv.deleted
            and any(r.subject == subject and r.version == version for r in sv.references)
        }
        return sorted(ids)

    # ----------------------------------------------------------------- fold

    def apply(self, key: dict[str, Any], value: dict[str, Any] | None, canonical: str) -> None:
        """Fold one record into the state. ``canonical`` is the schema's identity text for
        SCHEMA records (computed by the caller, which knows the formats)."""
        keytype = key.get("keytype")
        if keytype == "SCHEMA":
            self._apply_schema(key, value, canonical)
        elif keytype == "CONFIG":
            self._apply_config(key, value)
        elif keytype == "MODE":
            self._apply_setting(self.modes, key, value, "mode")
        elif keytype == "ID_WATERMARK" and value is not None:
            self.max_id = max(self.max_id, int(value["max_id"]))
        # Unknown key types are skipped: a newer registry may have written them.

    def _apply_config(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        subject = key.get("subject")
        known: dict[str, Any] = {
            k: value[k] for k in CONFIG_FIELDS if value is not None and k in value
        }
        if not known:
            self.configs.pop(subject, None)
        else:
            self.configs[subject] = known

    def _apply_setting(
        self,
        table: dict[str | None, str],
        key: dict[str, Any],
        value: dict[str, Any] | None,
        field_name: str,
    ) -> None:
        subject = key.get("subject")
        if value is None:
            table.pop(subject, None)
        else:
            table[subject] = str(value[field_name])

    def _apply_schema(
        self, key: dict[str, Any], value: dict[str, Any] | None, canonical: str
    ) -> None:
        subject = str(key["subject"])
        version = int(key["version"])
        if value is None:
            versions = self.subjects.get(subject, {})
            versions.pop(version, None)
            if not versions:
                self.subjects.pop(subject, None)
            self._forget_unused_ids()
            return
        refs = tuple(
            SchemaReference(str(r["name"]), str(r["subject"]), int(r["version"]))
            for r in value.get("references") or ()
        )
        sv = SchemaVersion(
            subject=subject,
            version=version,
            schema_id=int(value["id"]),
            schema_type=str(value.get("schemaType") or "AVRO"),
            schema=str(value["schema"]),
            references=refs,
            deleted=bool(value.get("deleted", False)),
        )
        self.subjects.setdefault(subject, {})[version] = sv
        if sv.schema_id not in self.schemas:
            stored = StoredSchema(sv.schema_id, sv.schema_type, sv.schema, refs, canonical)
            self.schemas[sv.schema_id] = stored
            self.ids_by_identity[(sv.schema_type, canonical, refs)] = sv.schema_id
            self.ids_by_guid.setdefault(stored.guid, sv.schema_id)
        self.max_id = max(self.max_id, sv.schema_id)

    def _forget_unused_ids(self) -> None:
        """After a hard delete an id no version uses is gone (Confluent answers 40403 for it);
        ``max_id`` keeps its value so the id is never handed out again."""
        used = {sv.schema_id for vs in self.subjects.values() for sv in vs.values()}
        for schema_id in [i for i in self.schemas if i not in used]:
            stored = self.schemas.pop(schema_id)
            identity = (stored.schema_type, stored.canonical, stored.references)
            if self.ids_by_identity.get(identity) == schema_id:
                del self.ids_by_identity[identity]
            if self.ids_by_guid.get(stored.guid) == schema_id:
                del self.ids_by_guid[stored.guid]


# --------------------------------------------------------------------- record codec


def encode_json(data: dict[str, Any] | None) -> bytes | None:
    if data is None:
        return None
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def schema_key(subject: str, version: int) -> dict[str, Any]:
    invariant(version >= 1, "schema versions start at 1")
    return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}


def schema_value(sv: SchemaVersion) -> dict[str, Any]:
    return {
        "subject": sv.subject,
        "version": sv.version,
        "id": sv.schema_id,
        "schemaType": sv.schema_type,
        "schema": sv.schema,
        "references": [r.to_json() for r in sv.references],
        "deleted": sv.deleted,
    }


def config_key(subject: str | None) -> dict[str, Any]:
    return {"keytype": "CONFIG", "subject": subject, "magic": 0}


def mode_key(subject: str | None) -> dict[str, Any]:
    return {"keytype": "MODE", "subject": subject, "magic": 0}


def watermark_key() -> dict[str, Any]:
    return {"keytype": "ID_WATERMARK", "magic": 0}
