"""Confluent Schema Registry's REST API over :class:`RegistryService`, as a Starlette app.

Paths, bodies and error codes follow Confluent's API reference, so its clients work unchanged.
Writes run in a worker thread: they wait for the ``_schemas`` log to acknowledge, and the broker
that acknowledges may be serving on this very event loop.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from shoal.cross_site import refusal
from shoal.raw_path import decode_path_params, match_on_raw_path
from shoal.registry import errors
from shoal.registry.access import (
    ANONYMOUS,
    DENIED_ERROR_CODE,
    PRINCIPAL_SCOPE_KEY,
    Action,
    AllowEverything,
    SubjectAuthorizer,
    denied_message,
)
from shoal.registry.model import (
    SCHEMA_TYPES,
    SchemaReference,
    SchemaVersion,
    StoredSchema,
    schema_guid,
)
from shoal.registry.service import RegistryService, SchemaRequest

CONTENT_TYPE: Final = "application/vnd.schemaregistry.v1+json"
ACCEPTED_CONTENT_TYPES: Final = (
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
)
"""Confluent's (Jersey's @Consumes). None is a type a cross-site page can send without a
preflight, so a write in any of them comes from a client, not from a form elsewhere."""
BODY_BYTES_MAX: Final = 16 * 1024 * 1024
"""Large Protobuf or JSON schemas run to a few hundred KiB; 16 MiB bounds a hostile body."""

Handler = Callable[[Request], Awaitable[Response]]


class RegistryResponse(Response):
    media_type = CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def _schema_id(request: Request) -> int:
    raw = request.path_params["schema_id"]
    try:
        return int(raw)
    except ValueError:
        raise errors.schema_not_found(f"Schema {raw} not found") from None


async def _body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ACCEPTED_CONTENT_TYPES:  # none: what a no-cors fetch sends
        raise errors.RegistryError(415, 415, f"HTTP 415 Unsupported Media Type: {content_type}")
    raw = await request.body()
    if len(raw) > BODY_BYTES_MAX:
        raise errors.RegistryError(413, 413, f"Request body over {BODY_BYTES_MAX} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise errors.bad_request(f"Unexpected character or malformed JSON body: {exc}") from exc
    if not isinstance(data, dict):
        raise errors.unprocessable("The request body must be a JSON object")
    return data


def _schema_request(data: dict[str, Any]) -> SchemaRequest:
    schema = data.get("schema")
    if not isinstance(schema, str) or not schema.strip():
        raise errors.invalid_schema("the body needs a non-empty string field 'schema'")
    schema_type = data.get("schemaType") or "AVRO"
    if not isinstance(schema_type, str) or schema_type.upper() not in SCHEMA_TYPES:
        raise errors.invalid_schema(f"unknown schemaType '{schema_type}'")
    raw_refs = data.get("references") or []
    if not isinstance(raw_refs, list):
        raise errors.unprocessable("'references' must be a list")
    refs: list[SchemaReference] = []
    for raw in raw_refs:
        try:
            refs.append(SchemaReference(str(raw["name"]), str(raw["subject"]), int(raw["version"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.unprocessable(
                "each reference needs 'name', 'subject' and an integer 'version'"
            ) from exc
    schema_id, version = data.get("id"), data.get("version")
    for name, value in (("id", schema_id), ("version", version)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise errors.unprocessable(f"'{name}' must be an integer")
    return SchemaRequest(schema, schema_type.upper(), tuple(refs), schema_id, version)


def _schema_fields(schema_type: str, references: tuple[SchemaReference, ...]) -> dict[str, Any]:
    # Confluent leaves schemaType out for AVRO, the default, and references out when empty.
    fields: dict[str, Any] = {}
    if schema_type != "AVRO":
        fields["schemaType"] = schema_type
    if references:
        fields["references"] = [r.to_json() for r in references]
    return fields


def _version_json(sv: SchemaVersion) -> dict[str, Any]:
    return {
        "subject": sv.subject,
        "version": sv.version,
        "id": sv.schema_id,
        "guid": schema_guid(sv.schema, sv.references),
        **_schema_fields(sv.schema_type, sv.references),
        "schema": sv.schema,
    }


def build_registry_app(
    service: RegistryService, access: SubjectAuthorizer | None = None
) -> ASGIApp:
    """The registry's ASGI app, routed on raw paths (see :func:`match_on_raw_path`); every
    route asks ``access`` first (see :mod:`shoal.registry.access`)."""
    return match_on_raw_path(_routes_app(service, access or AllowEverything()))


def _principal(request: Request) -> str:
    return str(request.scope.get(PRINCIPAL_SCOPE_KEY) or ANONYMOUS)


def _host(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def _routes_app(  # noqa: C901 - one route table
    service: RegistryService, access: SubjectAuthorizer
) -> Starlette:
    async def register(request: Request) -> Response:
        body = _schema_request(await _body(request))
        sv = await run_in_threadpool(
            lambda: service.register(
                request.path_params["subject"], body, normalize=_flag(request, "normalize")
            )
        )
        # As Confluent's current registry answers: the stored version, not only its id.
        return RegistryResponse(
            {
                "id": sv.schema_id,
                "version": sv.version,
                "guid": schema_guid(sv.schema, sv.references),
                **_schema_fields(sv.schema_type, sv.references),
                "schema": sv.schema,
            }
        )

    async def lookup(request: Request) -> Response:
        body = _schema_request(await _body(request))
        # Off the event loop: a schema unlike every stored one is compiled to be checked.
        sv = await run_in_threadpool(
            lambda: service.lookup(
                request.path_params["subject"],
                body,
                include_deleted=_flag(request, "deleted"),
                normalize=_flag(request, "normalize"),
            )
        )
        return RegistryResponse(_version_json(sv))

    async def list_subjects(request: Request) -> Response:
        prefix = request.query_params.get("subjectPrefix", "")
        subjects = service.subjects(include_deleted=_flag(request, "deleted"), prefix=prefix)
        principal, host = _principal(request), _host(request)
        # Only the subjects the principal may read: a listing never names the others.
        return RegistryResponse(
            [s for s in subjects if access.may(principal, host, Action.READ, s)]
        )

    async def list_versions(request: Request) -> Response:
        subject = request.path_params["subject"]
        return RegistryResponse(
            service.versions(subject, include_deleted=_flag(request, "deleted"))
        )

    def _get_version(request: Request) -> SchemaVersion:
        return service.get_version(
            request.path_params["subject"],
            request.path_params["version"],
            include_deleted=_flag(request, "deleted"),
        )

    async def get_version(request: Request) -> Response:
        return RegistryResponse(_version_json(_get_version(request)))

    async def get_version_schema(request: Request) -> Response:
        sv = _get_version(request)
        return Response(sv.schema, media_type=CONTENT_TYPE)

    async def referenced_by(request: Request) -> Response:
        return RegistryResponse(
            service.referenced_by(request.path_params["subject"], request.path_params["version"])
        )

    async def delete_subject(request: Request) -> Response:
        versions = await run_in_threadpool(
            lambda: service.delete_subject(
                request.path_params["subject"], permanent=_flag(request, "permanent")
            )
        )
        return RegistryResponse(versions)

    async def delete_version(request: Request) -> Response:
        version = await run_in_threadpool(
            lambda: service.delete_version(
                request.path_params["subject"],
                request.path_params["version"],
                permanent=_flag(request, "permanent"),
            )
        )
        return RegistryResponse(version)

    def _stored(request: Request) -> StoredSchema:
        return service.schema_by_id(_schema_id(request))

    async def get_schema(request: Request) -> Response:
        stored = _stored(request)
        text = await run_in_threadpool(service.render, stored, request.query_params.get("format"))
        return RegistryResponse(
            {
                **_schema_fields(stored.schema_type, stored.references),
                "schema": text,
                "guid": stored.guid,
            }
        )

    async def get_schema_by_guid(request: Request) -> Response:
        stored = service.schema_by_guid(request.path_params["guid"])
        text = await run_in_threadpool(service.render, stored, request.query_params.get("format"))
        return RegistryResponse(
            {
                **_schema_fields(stored.schema_type, stored.references),
                "schema": text,
                "guid": stored.guid,
            }
        )

    async def ids_by_guid(request: Request) -> Response:
        # Confluent answers an empty list, not 40403, for a guid it does not know; shoal has
        # one context, Confluent's default ".".
        try:
            stored = service.schema_by_guid(request.path_params["guid"])
        except errors.RegistryError as exc:
            if exc.error_code != 40403:
                raise
            return RegistryResponse([])
        return RegistryResponse([{"context": ".", "id": stored.schema_id}])

    async def get_schema_text(request: Request) -> Response:
        return Response(_stored(request).schema, media_type=CONTENT_TYPE)

    async def schema_subjects(request: Request) -> Response:
        usages = service.usages(_schema_id(request), include_deleted=_flag(request, "deleted"))
        return RegistryResponse(sorted({sv.subject for sv in usages}))

    async def schema_versions(request: Request) -> Response:
        usages = service.usages(_schema_id(request), include_deleted=_flag(request, "deleted"))
        return RegistryResponse([{"subject": sv.subject, "version": sv.version} for sv in usages])

    async def schema_types(request: Request) -> Response:
        return RegistryResponse(sorted(SCHEMA_TYPES, reverse=True))

    async def compatibility(request: Request) -> Response:
        body = _schema_request(await _body(request))
        messages = await run_in_threadpool(
            service.check_compatibility,
            request.path_params["subject"],
            request.path_params.get("version"),
            body,
        )
        result: dict[str, Any] = {"is_compatible": not messages}
        if _flag(request, "verbose"):
            result["messages"] = messages
        return RegistryResponse(result)

    def _subject(request: Request) -> str | None:
        subject = request.path_params.get("subject")
        return None if subject is None else str(subject)

    async def get_config(request: Request) -> Response:
        config = service.config(
            _subject(request), default_to_global=_flag(request, "defaultToGlobal")
        )
        return RegistryResponse(config)

    async def put_config(request: Request) -> Response:
        data = await _body(request)
        config = await run_in_threadpool(service.set_config, _subject(request), data)
        return RegistryResponse(config)

    async def delete_config(request: Request) -> Response:
        previous = await run_in_threadpool(service.delete_config, _subject(request))
        return RegistryResponse(previous)

    async def get_mode(request: Request) -> Response:
        mode = service.mode(_subject(request), default_to_global=_flag(request, "defaultToGlobal"))
        return RegistryResponse({"mode": mode})

    async def put_mode(request: Request) -> Response:
        data = await _body(request)
        mode = await run_in_threadpool(
            lambda: service.set_mode(
                _subject(request), data.get("mode"), force=_flag(request, "force")
            )
        )
        return RegistryResponse({"mode": mode})

    async def delete_mode(request: Request) -> Response:
        previous = await run_in_threadpool(service.delete_mode, _subject(request))
        return RegistryResponse({"mode": previous})

    def guarded(handler: Handler, action: Action) -> Handler:
        async def run(request: Request) -> Response:
            # Before anything else: a write a page on another site could send (a form POST)
            # gets nothing but the refusal (see shoal.cross_site).
            refused = refusal(request.method, request.headers, ACCEPTED_CONTENT_TYPES)
            if refused is not None:
                return RegistryResponse(
                    {"error_code": refused.status, "message": refused.message},
                    status_code=refused.status,
                )
            decode_path_params(request.scope)
            subject = request.path_params.get("subject")
            principal = _principal(request)
            if not access.may(principal, _host(request), action, subject):
                return RegistryResponse(
                    {
                        "error_code": DENIED_ERROR_CODE,
                        "message": denied_message(principal, action, subject),
                    },
                    status_code=403,
                )
            try:
                return await handler(request)
            except errors.RegistryError as exc:
                return RegistryResponse(exc.body(), status_code=exc.http_status)

        return run

    s = "/subjects/{subject}"
    v = s + "/versions/{version}"
    table: list[tuple[str, Handler, list[str]]] = [
        ("/subjects", list_subjects, ["GET"]),
        (s, lookup, ["POST"]),
        (s, delete_subject, ["DELETE"]),
        (s + "/versions", list_versions, ["GET"]),
        (s + "/versions", register, ["POST"]),
        (v, get_version, ["GET"]),
        (v, delete_version, ["DELETE"]),
        (v + "/schema", get_version_schema, ["GET"]),
        (v + "/referencedby", referenced_by, ["GET"]),
        ("/schemas/types", schema_types, ["GET"]),
        ("/schemas/ids/{schema_id}", get_schema, ["GET"]),
        ("/schemas/ids/{schema_id}/schema", get_schema_text, ["GET"]),
        ("/schemas/ids/{schema_id}/subjects", schema_subjects, ["GET"]),
        ("/schemas/ids/{schema_id}/versions", schema_versions, ["GET"]),
        ("/schemas/guids/{guid}", get_schema_by_guid, ["GET"]),
        ("/schemas/guids/{guid}/ids", ids_by_guid, ["GET"]),
        ("/compatibility" + s + "/versions", compatibility, ["POST"]),
        ("/compatibility" + v, compatibility, ["POST"]),
        ("/config", get_config, ["GET"]),
        ("/config", put_config, ["PUT"]),
        ("/config", delete_config, ["DELETE"]),
        ("/config/{subject}", get_config, ["GET"]),
        ("/config/{subject}", put_config, ["PUT"]),
        ("/config/{subject}", delete_config, ["DELETE"]),
        ("/mode", get_mode, ["GET"]),
        ("/mode", put_mode, ["PUT"]),
        ("/mode", delete_mode, ["DELETE"]),
        ("/mode/{subject}", get_mode, ["GET"]),
        ("/mode/{subject}", put_mode, ["PUT"]),
        ("/mode/{subject}", delete_mode, ["DELETE"]),
    ]
    # A GET, a lookup (POST /subjects/{s}) and a compatibility check only read; every other
    # method changes something.
    reads = {lookup, compatibility}
    routes = [
        Route(
            path,
            guarded(
                handler,
                Action.READ if methods == ["GET"] or handler in reads else Action.WRITE,
            ),
            methods=methods,
        )
        for path, handler, methods in table
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return RegistryResponse(
            {"error_code": status, "message": f"HTTP {status} {getattr(exc, 'detail', '')}"},
            status_code=status,
        )

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
