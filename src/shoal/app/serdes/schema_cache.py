"""The schemas a registry codec works with: asked of the registry once, prepared once.

Every registry codec (Avro, JSON Schema, Protobuf) needs the same two things: per subject, the
schema and id it writes records with; per schema id, the writer schema a record names, checked
to be of the codec's format. Each codec turns a schema into its own form once (a parsed Avro
schema, a JSON Schema validator; nothing for Protobuf, which reads with its generated class),
and :class:`SchemaCache` keeps that form, so the registry is asked on cache misses only: once
per subject for writing and once per schema id for reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

from shoal.app.serdes.payload import SerdeError
from shoal.app.serdes.registry import (
    Reference,
    RegisteredSchema,
    RegistryClient,
    SchemaRegistryError,
)

T = TypeVar("T")

FORMAT_NAMES: Final[dict[str, str]] = {"AVRO": "Avro", "JSON": "JSON", "PROTOBUF": "Protobuf"}
"""The registry's ``schemaType`` of each format, as error messages name it."""

Prepare = Callable[[RegisteredSchema], Awaitable[T]]
References = Callable[[], Awaitable[tuple[Reference, ...]]]


class SchemaCache(Generic[T]):
    """The writer schema per subject and the reader's view of each schema id, in the form
    ``prepare`` turns a registered schema into.

    ``schema`` (registry text, None to write with the subject's latest version) and
    ``references`` (the schemas it imports, resolved on the first write: Protobuf registers its
    imported files then) are what the codec writes with; ``auto_register`` and ``use_latest``
    as in :func:`subject_schema`. Failures are not cached: a registry that was down, or an id
    registered since, answers next time.
    """

    def __init__(
        self,
        registry: RegistryClient,
        schema_type: str,
        prepare: Prepare[T],
        *,
        schema: str | None,
        auto_register: bool,
        use_latest: bool,
        references: References | None = None,
    ) -> None:
        self.registry = registry
        self.schema_type = schema_type
        self._prepare = prepare
        self._schema = schema
        self._auto_register = auto_register
        self._use_latest = use_latest
        self._references = references
        self._writers: dict[str, tuple[int, T]] = {}
        self._writing: dict[str, asyncio.Task[tuple[int, T]]] = {}
        self._readers: dict[int, T] = {}

    async def writer(self, subject: str) -> tuple[int, T]:
        """The schema id records of ``subject`` are written with, and its prepared form.

        Records encoded concurrently before the first answer share one registry call (a
        producer sending a thousand records at once would otherwise register a thousand
        times)."""
        cached = self._writers.get(subject)
        if cached is not None:
            return cached
        task = self._writing.get(subject)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(self._writer(subject))
            self._writing[subject] = task
            task.add_done_callback(lambda done: self._written(subject, done))
        # Shielded: one waiter cancelled must not cancel the call the others share.
        return await asyncio.shield(task)

    def _written(self, subject: str, task: asyncio.Task[tuple[int, T]]) -> None:
        if self._writing.get(subject) is task:
            del self._writing[subject]
        if not task.cancelled():
            task.exception()  # retrieved here too, in case every waiter was cancelled

    async def _writer(self, subject: str) -> tuple[int, T]:
        cached = self._writers.get(subject)
        if cached is None:
            references = () if self._references is None else await self._references()
            registered = await subject_schema(
                self.registry,
                subject,
                self._schema,
                self.schema_type,
                references,
                auto_register=self._auto_register,
                use_latest=self._use_latest,
            )
            cached = (registered.schema_id, await self._prepare(registered))
            self._writers[subject] = cached
        return cached

    async def reader(self, schema_id: int) -> T:
        """The prepared writer schema a record names; SerdeError when the id is unknown or
        names a schema of another format (the record is at fault)."""
        if schema_id in self._readers:
            return self._readers[schema_id]
        registered = await fetch_schema(self.registry, schema_id)
        if registered.schema_type != self.schema_type:
            raise SerdeError(
                f"schema id {schema_id} is a {registered.schema_type} schema, "
                f"not {FORMAT_NAMES.get(self.schema_type, self.schema_type)}"
            )
        prepared = self._readers[schema_id] = await self._prepare(registered)
        return prepared


async def subject_schema(
    client: RegistryClient,
    subject: str,
    schema: str | None,
    schema_type: str,
    references: tuple[Reference, ...] = (),
    *,
    auto_register: bool,
    use_latest: bool,
) -> RegisteredSchema:
    """The schema (and id) to write records of ``subject`` with: the subject's latest version
    (``use_latest``), ``schema`` registered (``auto_register``), or ``schema`` looked up."""
    if use_latest:
        return await client.latest(subject)
    if schema is None:
        raise ValueError(f"no schema to write {subject} with: give one, or use_latest=True")
    if auto_register:
        schema_id = await client.register(subject, schema, schema_type, references)
        return RegisteredSchema(schema_id, schema, schema_type, references, subject)
    try:
        return await client.lookup(subject, schema, schema_type, references)
    except SchemaRegistryError as exc:
        if exc.http_status != 404:
            raise
        raise SchemaRegistryError(
            f"the schema is not registered under subject {subject!r} and auto_register is "
            f"off: register it first (e.g. with `shoal schema register`). {exc}",
            http_status=exc.http_status,
            error_code=exc.error_code,
        ) from exc


async def fetch_schema(client: RegistryClient, schema_id: int) -> RegisteredSchema:
    """The writer schema a record names, with an unknown id said plainly (the record is at
    fault, so it goes to the DLQ)."""
    try:
        return await client.by_id(schema_id)
    except SchemaRegistryError as exc:
        if exc.http_status == 404:
            raise SerdeError(
                f"schema id {schema_id} is unknown to the registry at {client.url}: {exc}"
            ) from exc
        raise
