"""What every schema-registry codec shares: Confluent's wire format, the subject naming, and a
small caching client of the registry's REST API.

The framework is a client of the registry like any other: it speaks HTTP to the URL it is
given and never imports :mod:`shoal.registry`, so the same codecs work against Confluent's
registry, Karapace or Apicurio's Confluent API.

Wire format of a record value (Confluent's, so confluent-kafka's serializers read ours)::

    +-------+----------------------+----------------------------+
    | magic | schema id (int32 BE) | payload (Avro / JSON / PB) |
    |  0x00 |       4 bytes        |                            |
    +-------+----------------------+----------------------------+
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import struct
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from shoal.app.serdes.payload import SerdeError

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")
"""Magic byte and schema id, in front of every payload."""
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
REGISTRY_TIMEOUT_S = 10.0
"""A registry call happens on a cache miss, in the path of a publish or a delivery: long enough
for a registry under load, short enough that a dead one fails the record instead of hanging it."""

SubjectStrategy = Callable[[str], str]


def topic_name_strategy(topic: str) -> str:
    """Confluent's default subject of a record value: ``<topic>-value``."""
    return f"{topic}-value"


class SchemaRegistryError(Exception):
    """The registry refused a request (``http_status`` and Confluent's ``error_code``), or
    could not be reached (``http_status`` 0)."""

    def __init__(self, message: str, *, http_status: int = 0, error_code: int = 0) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code


class RegistryUnavailableError(SchemaRegistryError):
    """No answer, or a 5xx: the record is not at fault, a later attempt may succeed."""


class IncompatibleSchemaError(SchemaRegistryError):
    """The subject's compatibility rule refuses the schema (HTTP 409)."""


class WireFormatError(SerdeError):
    """The bytes are not in Confluent's wire format (no magic byte 0, too short, bad indexes)."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A schema another schema imports: ``name`` as the importer spells it, where it lives."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A schema as the registry returns it; ``version`` and ``subject`` are known when it was
    read through a subject (0 and "" when read by id)."""

    schema_id: int
    schema: str
    schema_type: str
    references: tuple[Reference, ...] = ()
    subject: str = ""
    version: int = 0


def frame(schema_id: int, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC_BYTE, schema_id) + payload


def unframe(raw: bytes) -> tuple[int, memoryview]:
    """The schema id a record names, and the payload after the header."""
    if len(raw) < HEADER.size:
        raise WireFormatError(
            f"a {len(raw)}-byte record cannot hold Confluent's 5-byte header (magic byte, "
            "schema id); was it written without a schema registry serializer?"
        )
    magic, schema_id = HEADER.unpack_from(raw)
    if magic != MAGIC_BYTE:
        raise WireFormatError(
            f"unknown magic byte {magic & 0xFF:#04x} (expected 0x00): the record was not "
            "written with Confluent's schema registry wire format"
        )
    return schema_id, memoryview(raw)[HEADER.size :]


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every registry call of the process: building one loads the CA
    bundle, which takes about 100 ms, too long to do on the event loop at each cache miss."""
    return httpx.create_ssl_context()


def _references(data: Any) -> tuple[Reference, ...]:
    raw = (data.get("references") or []) if isinstance(data, dict) else []
    return tuple(Reference(str(r["name"]), str(r["subject"]), int(r["version"])) for r in raw)


def _schema_body(schema: str, schema_type: str, references: tuple[Reference, ...]) -> Any:
    body: dict[str, Any] = {"schema": schema}
    # Confluent's own clients leave out the default type and empty references; so do we, so a
    # registry that compares request bodies sees the same thing from both.
    if schema_type != "AVRO":
        body["schemaType"] = schema_type
    if references:
        body["references"] = [r.to_json() for r in references]
    return body


class RegistryClient:
    """The few registry calls a codec needs, with what never changes cached.

    Schema ids and (subject, version) pairs are immutable in a registry, so they are cached for
    the life of the client (the caches hold at most what the registry holds; failures are not
    cached, as an id unknown now may be registered later). "latest" and registration results
    are cached by the codec, which knows when it wants a fresh answer. A new HTTP connection is
    opened per call: calls happen on cache misses only, and a connection pool would tie the
    client to one event loop and need closing, which the Codec protocol has no place for.
    Concurrent misses for one key share one call, so a burst of records with a new schema id
    asks the registry once.
    """

    def __init__(self, url: str, *, timeout_s: float = REGISTRY_TIMEOUT_S) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a schema registry URL starts with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._tls = _tls_context()  # here, at declaration, rather than on the event loop
        self._by_id: dict[int, RegisteredSchema] = {}
        self._by_version: dict[tuple[str, int], RegisteredSchema] = {}
        self._in_flight: dict[Hashable, asyncio.Task[RegisteredSchema]] = {}

    async def register(
        self, subject: str, schema: str, schema_type: str, references: tuple[Reference, ...] = ()
    ) -> int:
        """Register ``schema`` under ``subject`` (a no-op if it is there) and return its id."""
        body = _schema_body(schema, schema_type, references)
        data = await self._call("POST", f"/subjects/{_q(subject)}/versions", body)
        return int(data["id"])

    async def lookup(
        self, subject: str, schema: str, schema_type: str, references: tuple[Reference, ...] = ()
    ) -> RegisteredSchema:
        """The version of ``subject`` holding ``schema``; raises if it was never registered."""
        body = _schema_body(schema, schema_type, references)
        data = await self._call("POST", f"/subjects/{_q(subject)}", body)
        return _registered(data, schema_type)

    async def latest(self, subject: str) -> RegisteredSchema:
        data = await self._call("GET", f"/subjects/{_q(subject)}/versions/latest")
        return _registered(data, "AVRO")

    async def version(self, subject: str, version: int) -> RegisteredSchema:
        cached = self._by_version.get((subject, version))
        if cached is not None:
            return cached

        async def fetch() -> RegisteredSchema:
            data = await self._call("GET", f"/subjects/{_q(subject)}/versions/{version}")
            registered = self._by_version[(subject, version)] = _registered(data, "AVRO")
            return registered

        return await self._once(("version", subject, version), fetch)

    async def by_id(self, schema_id: int) -> RegisteredSchema:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached

        async def fetch() -> RegisteredSchema:
            data = await self._call("GET", f"/schemas/ids/{schema_id}")
            registered = RegisteredSchema(
                schema_id,
                str(data["schema"]),
                str(data.get("schemaType") or "AVRO"),
                _references(data),
            )
            self._by_id[schema_id] = registered
            return registered

        return await self._once(("id", schema_id), fetch)

    async def _once(
        self, key: Hashable, fetch: Callable[[], Awaitable[RegisteredSchema]]
    ) -> RegisteredSchema:
        """Run ``fetch`` unless a call for ``key`` is under way; either way, its result."""
        task = self._in_flight.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(fetch())
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._settled(key, done))
        # Shielded: one waiter cancelled (its record's handler stopped) must not cancel the
        # call the other waiters share.
        return await asyncio.shield(task)

    def _settled(self, key: Hashable, task: asyncio.Task[RegisteredSchema]) -> None:
        if self._in_flight.get(key) is task:
            del self._in_flight[key]
        if not task.cancelled():
            task.exception()  # retrieved here too, in case every waiter was cancelled

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        content = None if body is None else json.dumps(body).encode()
        headers = {"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE}
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, verify=self._tls) as http:
                response = await http.request(
                    method, self.url + path, content=content, headers=headers
                )
        except httpx.HTTPError as exc:
            raise RegistryUnavailableError(
                f"cannot reach the schema registry at {self.url}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success and isinstance(data, dict):
            return data
        raise _refusal(method, self.url + path, response.status_code, data)


def _registered(data: Any, default_type: str) -> RegisteredSchema:
    return RegisteredSchema(
        int(data["id"]),
        str(data["schema"]),
        str(data.get("schemaType") or default_type),
        _references(data),
        str(data.get("subject", "")),
        int(data.get("version", 0)),
    )


def _refusal(method: str, url: str, status: int, data: Any) -> SchemaRegistryError:
    message = data.get("message") if isinstance(data, dict) else None
    code = data.get("error_code", 0) if isinstance(data, dict) else 0
    text = f"schema registry: {method} {url} answered HTTP {status}"
    text += f" (error {code}): {message}" if message else " without an error message"
    if status == 409:
        return IncompatibleSchemaError(text, http_status=status, error_code=int(code))
    kind = RegistryUnavailableError if status >= 500 else SchemaRegistryError
    return kind(text, http_status=status, error_code=int(code))


def _q(subject: str) -> str:
    # Subjects may hold '/' (Protobuf file names do); it must not become a path separator.
    return quote(subject, safe="")
