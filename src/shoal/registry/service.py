"""The registry's operations: register, look up, delete, check compatibility, configure.

Every change is decided on the current state, written to the log, and folded into the state
only once the log acknowledged it: a failed write (50001) or a refused request changes nothing.
Changes are serialised by one lock held across the write (the registry is the log's single
writer); reads take only the short state lock, so they never wait for a write to the broker —
which matters when the broker serving the write runs on the same event loop as these reads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from shoal.registry import errors
from shoal.registry.formats import (
    ParsedSchema,
    ResolvedReference,
    SchemaParseError,
    identity,
    parse_schema,
)
from shoal.registry.formats.protobuf import ProtobufSchema
from shoal.registry.log import SchemaLog, SchemaLogError
from shoal.registry.model import (
    COMPATIBILITY_LEVELS,
    MODES,
    SCHEMA_TYPES,
    RegistryState,
    SchemaReference,
    SchemaVersion,
    StoredSchema,
    config_key,
    encode_json,
    mode_key,
    schema_key,
    schema_value,
    watermark_key,
)

VERSION_MAX: Final = 2**31 - 1
REFERENCE_DEPTH_MAX: Final = 32
"""References nest (a schema references one that references another); a deeper chain is
almost certainly a cycle written through IMPORT mode, and is refused rather than followed."""

Record = tuple[dict[str, Any], dict[str, Any] | None]


@dataclass(frozen=True)
class SchemaRequest:
    """The body of a register, lookup or compatibility request."""

    schema: str
    schema_type: str = "AVRO"
    references: tuple[SchemaReference, ...] = ()
    schema_id: int | None = None
    version: int | None = None


class RegistryService:
    def __init__(self) -> None:
        self.state = RegistryState()
        self._log: SchemaLog | None = None
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._parsed: dict[int, ParsedSchema] = {}

    # ------------------------------------------------------------ lifecycle

    @property
    def ready(self) -> bool:
        return self._log is not None

    def open(self, log: SchemaLog) -> None:
        """Rebuild the state from every record in ``log``, then start serving from it."""
        state = RegistryState()
        for key_bytes, value_bytes in log.replay():
            try:
                key = json.loads(key_bytes)
                value = None if value_bytes is None else json.loads(value_bytes)
            except ValueError:
                continue  # not a registry record (someone else wrote to the topic)
            if not isinstance(key, dict) or not (value is None or isinstance(value, dict)):
                continue
            state.apply(key, value, _identity_of(value))
        with self._state_lock:
            self.state = state
            self._parsed.clear()
            self._log = log

    def close(self) -> None:
        with self._write_lock:
            log, self._log = self._log, None
            if log is not None:
                log.close()

    def _require_ready(self) -> SchemaLog:
        log = self._log
        if log is None:
            raise errors.not_ready()
        return log

    def _commit(self, records: Sequence[Record]) -> None:
        log = self._require_ready()
        encoded: list[tuple[bytes, bytes | None]] = []
        for key, value in records:
            key_bytes = encode_json(key)
            if key_bytes is None:  # keys are never None; keeps the type narrow for mypy
                raise errors.store_error("empty record key")
            encoded.append((key_bytes, encode_json(value)))
        try:
            log.append(encoded)
        except SchemaLogError as exc:
            raise errors.store_error(str(exc)) from exc
        with self._state_lock:
            for key, value in records:
                self.state.apply(key, value, _identity_of(value))

    # ------------------------------------------------------------ reads

    def subjects(self, *, include_deleted: bool, prefix: str = "") -> list[str]:
        self._require_ready()
        with self._state_lock:
            names = self.state.live_subjects(include_deleted=include_deleted)
        return [s for s in names if s.startswith(prefix)]

    def versions(self, subject: str, *, include_deleted: bool) -> list[int]:
        self._require_ready()
        with self._state_lock:
            found = self.state.versions(subject, include_deleted=include_deleted)
        if not found:
            raise errors.subject_not_found(subject)
        return [v.version for v in found]

    def get_version(self, subject: str, version: str, *, include_deleted: bool) -> SchemaVersion:
        self._require_ready()
        number = parse_version(version)
        with self._state_lock:
            found = self.state.versions(subject, include_deleted=True)
        if not found:
            raise errors.subject_not_found(subject)
        if number == -1:
            live = [v for v in found if not v.deleted]
            if not live:
                raise errors.version_not_found(subject, version)
            return live[-1]
        for sv in found:
            if sv.version == number and (include_deleted or not sv.deleted):
                return sv
        raise errors.version_not_found(subject, version)

    def schema_by_id(self, schema_id: int) -> StoredSchema:
        self._require_ready()
        with self._state_lock:
            stored = self.state.schemas.get(schema_id)
        if stored is None:
            raise errors.schema_not_found(f"Schema {schema_id} not found")
        return stored

    def schema_by_guid(self, guid: str) -> StoredSchema:
        self._require_ready()
        with self._state_lock:
            schema_id = self.state.ids_by_guid.get(guid.lower())
        if schema_id is None:
            raise errors.schema_not_found(f"Schema {guid} not found")
        return self.schema_by_id(schema_id)

    def render(self, stored: StoredSchema, fmt: str | None) -> str:
        """The schema text, in ``fmt`` when the format has such an alternative."""
        if fmt:
            parsed = self._parse_stored(stored)
            rendered = parsed.render(fmt)
            if rendered is not None:
                return rendered
        return stored.schema

    def usages(self, schema_id: int, *, include_deleted: bool) -> list[SchemaVersion]:
        self.schema_by_id(schema_id)
        with self._state_lock:
            return [
                sv
                for subject in sorted(self.state.subjects)
                for sv in self.state.versions(subject, include_deleted=include_deleted)
                if sv.schema_id == schema_id
            ]

    def referenced_by(self, subject: str, version: str) -> list[int]:
        sv = self.get_version(subject, version, include_deleted=True)
        with self._state_lock:
            return self.state.referenced_by(subject, sv.version)

    def lookup(
        self, subject: str, request: SchemaRequest, *, include_deleted: bool, normalize: bool
    ) -> SchemaVersion:
        """The version of ``subject`` holding the requested schema. As Confluent does, the
        schema is checked first (42201 when invalid, whether or not the subject exists), then
        40401 when the subject has no versions, 40403 when none of them holds the schema."""
        self._require_ready()
        with self._state_lock:
            found = self.state.versions(subject, include_deleted=include_deleted)
            normalize = normalize or self.state.normalize(subject)
        candidates = list(reversed(found))
        wanted = identity(request.schema_type, request.schema)
        for sv in candidates:
            # The same text as a stored version: valid (it was checked when registered), and
            # found without a parse (a protoc run for Protobuf).
            if (
                sv.schema_type == request.schema_type
                and sv.references == request.references
                and identity(sv.schema_type, sv.schema) == wanted
            ):
                return sv
        parsed = self.parse_request(request)
        if not found:
            raise errors.subject_not_found(subject)
        if normalize:
            request = self._normalized_request(request, parsed)
        same = self._equivalents(candidates, request, parsed, normalize=normalize)
        if not same:
            raise errors.schema_not_found()
        return same[0]

    def _equivalents(
        self,
        candidates: Sequence[SchemaVersion],
        request: SchemaRequest,
        parsed: ParsedSchema | None,
        *,
        normalize: bool = False,
    ) -> list[SchemaVersion]:
        """The candidates that hold the requested schema: the same type and references, and
        the same identity text — or, for Protobuf, the same descriptor once the two forms a
        client may send (``.proto`` text, base64 descriptor) are compiled and normalised, as
        Confluent's registry does; with ``normalize``, the same normal form (the stored
        version normalised too). Both sides are parsed only when the texts differ."""
        typed = [
            sv
            for sv in candidates
            if sv.schema_type == request.schema_type
            and (sv.references == request.references or normalize)
        ]
        if normalize:
            refs = _normal_references(request.references)
            typed = [sv for sv in typed if _normal_references(sv.references) == refs]
        wanted = identity(request.schema_type, request.schema)
        same = [sv for sv in typed if identity(sv.schema_type, sv.schema) == wanted]
        if same or not typed:
            return same
        if request.schema_type != "PROTOBUF" and not normalize:
            return same
        if parsed is None:
            parsed = self.parse_request(request)
        normal = _normal_key(parsed)
        return [sv for sv in typed if _normal_key(self._parse_version(sv)) == normal]

    def _normalized_request(self, request: SchemaRequest, parsed: ParsedSchema) -> SchemaRequest:
        """``?normalize=true`` (or the ``normalize`` config): the schema in its format's normal
        form and the references sorted without duplicates, as Confluent stores them."""
        text = parsed.normal_form
        return replace(
            request,
            schema=request.schema if text is None else text,
            references=_normal_references(request.references),
        )

    def config(self, subject: str | None, *, default_to_global: bool) -> dict[str, Any]:
        """The config fields set for ``subject`` (None: global; the global compatibility level
        always has a value), or with ``default_to_global`` the ones in force for it."""
        self._require_ready()
        with self._state_lock:
            if subject is not None and subject not in self.state.configs and not default_to_global:
                raise errors.subject_config_not_found(subject)
            if subject is None or default_to_global:
                found: dict[str, Any] = {"compatibilityLevel": self.state.compatibility(subject)}
                if self.state.config_field(subject, "normalize", None) is not None:
                    found["normalize"] = self.state.normalize(subject)
                return found
            return dict(self.state.configs[subject])

    def mode(self, subject: str | None, *, default_to_global: bool) -> str:
        self._require_ready()
        with self._state_lock:
            if subject is not None and subject not in self.state.modes and not default_to_global:
                raise errors.subject_mode_not_found(subject)
            return self.state.mode(subject)

    # ------------------------------------------------------------ schemas

    def _parse_stored(self, stored: StoredSchema) -> ParsedSchema:
        cached = self._parsed.get(stored.schema_id)
        if cached is None:
            refs = self._resolve_references(stored.references)
            cached = parse_schema(stored.schema_type, stored.schema, refs)
            self._parsed[stored.schema_id] = cached
        return cached

    def _parse_version(self, sv: SchemaVersion) -> ParsedSchema:
        return self._parse_stored(self.schema_by_id(sv.schema_id))

    def _resolve_references(
        self, references: Sequence[SchemaReference], depth: int = 0
    ) -> list[ResolvedReference]:
        """Every schema the references name, transitively, dependencies first."""
        if depth > REFERENCE_DEPTH_MAX:
            raise errors.invalid_schema("references nest too deeply (a cycle?)")
        resolved: list[ResolvedReference] = []
        for ref in references:
            with self._state_lock:
                sv = self.state.subjects.get(ref.subject, {}).get(ref.version)
            if sv is None:
                raise errors.invalid_schema(
                    f"reference '{ref.name}' names subject '{ref.subject}' version "
                    f"{ref.version}, which does not exist"
                )
            for dep in self._resolve_references(sv.references, depth + 1):
                if all(r.name != dep.name for r in resolved):
                    resolved.append(dep)
            if all(r.name != ref.name for r in resolved):
                resolved.append(ResolvedReference(ref.name, sv.schema))
        return resolved

    def parse_request(self, request: SchemaRequest) -> ParsedSchema:
        if request.schema_type not in SCHEMA_TYPES:
            raise errors.invalid_schema(f"unknown schema type '{request.schema_type}'")
        refs = self._resolve_references(request.references)
        try:
            return parse_schema(request.schema_type, request.schema, refs)
        except SchemaParseError as exc:
            raise errors.invalid_schema(str(exc)) from exc
        except RecursionError as exc:
            raise errors.invalid_schema("the schema nests too deeply") from exc

    def _incompatibilities(
        self, parsed: ParsedSchema, level: str, against: Sequence[SchemaVersion]
    ) -> list[str]:
        if level == "NONE" or not against:
            return []
        targets = against if level.endswith("_TRANSITIVE") else against[-1:]
        messages: list[str] = []
        for sv in reversed(targets):
            old = self._parse_version(sv)
            if level.startswith(("BACKWARD", "FULL")):
                messages += [
                    f"{level} check against version {sv.version}: new schema cannot read data "
                    f"written with it: {m}"
                    for m in parsed.incompatibilities(old)
                ]
            if level.startswith(("FORWARD", "FULL")):
                messages += [
                    f"{level} check against version {sv.version}: it cannot read data written "
                    f"with the new schema: {m}"
                    for m in old.incompatibilities(parsed)
                ]
        return messages

    def check_compatibility(
        self, subject: str, version: str | None, request: SchemaRequest
    ) -> list[str]:
        """Why ``request`` may not follow ``subject`` (at ``version``, or per the subject's
        level against its versions); empty when compatible."""
        self._require_ready()
        parsed = self.parse_request(request)
        with self._state_lock:
            level = self.state.compatibility(subject)
            live = self.state.versions(subject, include_deleted=False)
        if version is None:
            return self._incompatibilities(parsed, level, live)
        sv = self.get_version(subject, version, include_deleted=False)
        return self._incompatibilities(parsed, level.removesuffix("_TRANSITIVE"), [sv])

    # ------------------------------------------------------------ writes

    def register(
        self, subject: str, request: SchemaRequest, *, normalize: bool = False
    ) -> SchemaVersion:
        with self._write_lock:
            self._require_ready()
            with self._state_lock:
                mode = self.state.mode(subject)
                level = self.state.compatibility(subject)
                every = self.state.versions(subject, include_deleted=True)
                normalize = normalize or self.state.normalize(subject)
            if mode == "READONLY":
                raise errors.operation_not_permitted(f"Subject '{subject}' is in read-only mode")
            importing = mode == "IMPORT"
            if request.schema_id is not None and not importing:
                raise errors.operation_not_permitted(
                    f"Subject '{subject}' is not in import mode; a schema id cannot be given"
                )
            parsed = self.parse_request(request)
            if normalize:
                request = self._normalized_request(request, parsed)
            wanted = identity(request.schema_type, request.schema)
            live = [sv for sv in every if not sv.deleted]
            equivalents = self._equivalents(
                list(reversed(live)), request, parsed, normalize=normalize
            )
            for sv in equivalents:
                if request.schema_id is None or request.schema_id == sv.schema_id:
                    return sv
            if not importing:
                problems = self._incompatibilities(parsed, level, live)
                if problems:
                    raise errors.incompatible(
                        f"Schema being registered is incompatible with an earlier schema for "
                        f"subject '{subject}', details: {problems}"
                    )
            schema_id = self._choose_id(request, wanted, parsed)
            version = request.version if importing and request.version else None
            if version is None:
                version = max((sv.version for sv in every), default=0) + 1
            elif any(sv.version == version for sv in every):
                raise errors.operation_not_permitted(
                    f"Version {version} of subject '{subject}' already exists"
                )
            sv = SchemaVersion(
                subject,
                version,
                schema_id,
                request.schema_type,
                request.schema,
                request.references,
            )
            self._commit([(schema_key(subject, version), schema_value(sv))])
            self._parsed.setdefault(schema_id, parsed)
            return sv

    def _choose_id(self, request: SchemaRequest, wanted: str, parsed: ParsedSchema) -> int:
        identity_key = (request.schema_type, wanted, request.references)
        with self._state_lock:
            existing = self.state.ids_by_identity.get(identity_key)
            taken = self.state.schemas.get(request.schema_id or 0)
            if existing is None and request.schema_type == "PROTOBUF":
                others = [
                    s
                    for s in self.state.schemas.values()
                    if s.schema_type == "PROTOBUF" and s.references == request.references
                ]
            else:
                others = []
            next_id = self.state.max_id + 1
        if request.schema_id is None:
            if existing is not None:
                return existing
            normal = _normalized(parsed)
            for stored in others:  # the same Protobuf schema in its other form
                if _normalized(self._parse_stored(stored)) == normal:
                    return stored.schema_id
            return next_id
        if (
            taken is not None
            and (taken.schema_type, taken.canonical, taken.references) != identity_key
        ):
            raise errors.operation_not_permitted(
                f"Overwrite new schema with id {request.schema_id} is not permitted."
            )
        if request.schema_id < 1:
            raise errors.unprocessable("Schema ids start at 1")
        return request.schema_id

    def _check_writable(self, subject: str) -> None:
        with self._state_lock:
            if self.state.mode(subject) == "READONLY":
                raise errors.operation_not_permitted(f"Subject '{subject}' is in read-only mode")

    def _check_unreferenced(self, subject: str, versions: Sequence[SchemaVersion]) -> None:
        with self._state_lock:
            for sv in versions:
                users = self.state.referenced_by(subject, sv.version)
                if users:
                    raise errors.reference_exists(
                        f"One or more references exist to the schema {{subject={subject}, "
                        f"version={sv.version}}}: used by schema ids {users}"
                    )

    def delete_subject(self, subject: str, *, permanent: bool) -> list[int]:
        with self._write_lock:
            self._require_ready()
            self._check_writable(subject)
            with self._state_lock:
                every = self.state.versions(subject, include_deleted=True)
                has_config = subject in self.state.configs
                has_mode = subject in self.state.modes
            if not every:
                raise errors.subject_not_found(subject)
            live = [sv for sv in every if not sv.deleted]
            self._check_unreferenced(subject, every)
            records: list[Record]
            if not permanent:
                if not live:
                    raise errors.subject_soft_deleted(subject)
                records = [
                    (schema_key(subject, sv.version), schema_value(replace(sv, deleted=True)))
                    for sv in live
                ]
                self._commit(records)
                return [sv.version for sv in live]
            if live:
                raise errors.subject_not_soft_deleted(subject)
            records = [(schema_key(subject, sv.version), None) for sv in every]
            if has_config:
                records.append((config_key(subject), None))
            if has_mode:
                records.append((mode_key(subject), None))
            records.append(self._watermark())
            self._commit(records)
            return [sv.version for sv in every]

    def delete_version(self, subject: str, version: str, *, permanent: bool) -> int:
        with self._write_lock:
            self._require_ready()
            self._check_writable(subject)
            sv = self.get_version(subject, version, include_deleted=permanent)
            self._check_unreferenced(subject, [sv])
            if not permanent:
                self._commit(
                    [(schema_key(subject, sv.version), schema_value(replace(sv, deleted=True)))]
                )
                return sv.version
            if not sv.deleted:
                raise errors.version_not_soft_deleted(subject, sv.version)
            self._commit([(schema_key(subject, sv.version), None), self._watermark()])
            return sv.version

    def _watermark(self) -> Record:
        """Written with hard deletes: once compaction drops the deleted schema's records, this
        is what keeps its id from being handed out again."""
        with self._state_lock:
            return watermark_key(), {"max_id": self.state.max_id}

    def set_config(self, subject: str | None, update: dict[str, Any]) -> dict[str, Any]:
        """Merge ``update`` (``compatibility`` and/or ``normalize``) into the subject's (None:
        global) config, as Confluent does: a field left out keeps its value."""
        fields: dict[str, Any] = {}
        level = update.get("compatibility", update.get("compatibilityLevel"))
        if level is not None:
            if not isinstance(level, str) or level.upper() not in COMPATIBILITY_LEVELS:
                raise errors.invalid_compatibility_level(level)
            fields["compatibilityLevel"] = level.upper()
        normalize = update.get("normalize")
        if normalize is not None:
            if not isinstance(normalize, bool):
                raise errors.unprocessable("'normalize' must be true or false")
            fields["normalize"] = normalize
        with self._write_lock:
            self._require_ready()
            with self._state_lock:
                merged = {**self.state.configs.get(subject, {}), **fields}
            self._commit([(config_key(subject), merged)])
        response = dict(merged)
        if "compatibilityLevel" in response:
            response["compatibility"] = response.pop("compatibilityLevel")
        return response

    def delete_config(self, subject: str | None) -> dict[str, Any]:
        with self._write_lock:
            self._require_ready()
            with self._state_lock:
                if subject is not None and subject not in self.state.configs:
                    # Confluent answers 40401 here, whether or not the subject has versions.
                    raise errors.subject_not_found(subject)
            previous = self.config(subject, default_to_global=False)
            self._commit([(config_key(subject), None)])
            return previous

    def set_mode(self, subject: str | None, mode: object, *, force: bool) -> str:
        if not isinstance(mode, str) or mode.upper() not in MODES:
            raise errors.invalid_mode(mode)
        with self._write_lock:
            self._require_ready()
            if mode.upper() == "IMPORT" and not force:
                with self._state_lock:
                    if subject is None:
                        populated = bool(self.state.subjects)
                    else:
                        populated = bool(self.state.versions(subject, include_deleted=True))
                if populated:
                    raise errors.operation_not_permitted(
                        "Cannot import since found existing subjects; use force=true to override"
                    )
            self._commit([(mode_key(subject), {"mode": mode.upper()})])
        return mode.upper()

    def delete_mode(self, subject: str | None) -> str:
        """Forget the subject's mode (None: the global mode, back to READWRITE); answers the
        mode it had. Confluent answers 40401 for a subject without a mode of its own."""
        with self._write_lock:
            self._require_ready()
            with self._state_lock:
                if subject is not None and subject not in self.state.modes:
                    raise errors.subject_not_found(subject)
                previous = self.state.mode(subject)
            self._commit([(mode_key(subject), None)])
            return previous


def parse_version(version: str) -> int:
    """``latest`` or -1 (as -1), or a version number in [1, 2^31-1]; otherwise 42202."""
    if version == "latest":
        return -1
    try:
        number = int(version)
    except ValueError:
        raise errors.invalid_version(version) from None
    if number == -1 or 1 <= number <= VERSION_MAX:
        return number
    raise errors.invalid_version(version)


def _normalized(parsed: ParsedSchema) -> bytes | None:
    return parsed.normalized if isinstance(parsed, ProtobufSchema) else None


def _normal_key(parsed: ParsedSchema) -> str | bytes | None:
    """What two schemas share when they are the same once normalised."""
    if isinstance(parsed, ProtobufSchema):
        return parsed.normalized
    return parsed.normal_form


def _normal_references(references: Sequence[SchemaReference]) -> tuple[SchemaReference, ...]:
    return tuple(sorted(set(references), key=lambda r: (r.name, r.subject, r.version)))


def _identity_of(value: dict[str, Any] | None) -> str:
    if value is None or "schema" not in value:
        return ""
    return identity(str(value.get("schemaType") or "AVRO"), str(value["schema"]))
