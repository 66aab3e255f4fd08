"""The console process's HTTP app: the console's pages, ``/api/v1`` over Kafka's client APIs,
and the schema registry's API forwarded to ``--registry``.

The routes, parameters, JSON shapes, CSRF rule and error answers are the broker-served admin
API's (docs/admin-api.md), so the same pages and scripts work against either.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import unquote

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from shoal.console.browse import (
    Filters,
    Produce,
    end_offsets,
    read_page,
    read_page_counted,
    start_offsets,
)
from shoal.console.errors import ConsoleError, decode_bytes
from shoal.console.group_requests import WORKER_WAIT_S
from shoal.console.kafka_admin import KafkaAdmin
from shoal.cross_site import admin_refusal
from shoal.raw_path import decode_path_params, match_on_raw_path
from shoal.server.console import console_routes
from shoal.server.console.export import (
    EXPORT_PAGE_SIZE,
    EXPORT_SCAN_BYTES_MAX,
    FORMATS,
    ExportPage,
    export_headers,
    export_text,
)
from shoal.server.console.redrive import REFUSED as REDRIVE_REFUSED
from shoal.server.console.redrive import redrive_refusal
from shoal.server.host_guard import LoopbackHostGuard

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 500
"""Messages per page at most, as the broker-served API: a page is built in memory."""
STARTS: Final = ("oldest", "newest", "offset", "timestamp")
RESET_TO: Final = ("earliest", "latest", "timestamp", "offset")
REGISTRY_PATHS: Final = ("subjects", "schemas", "config", "compatibility", "mode")
"""Top-level paths of Confluent's registry API that the console forwards."""
REGISTRY_TIMEOUT_S: Final = 15.0


class Backend:
    """``group_wait_s``: how long a consumer-group request may take in its worker process
    before the worker is taken for hung and replaced (shoal.console.group_requests)."""

    def __init__(self, config: dict[str, str], group_wait_s: float = WORKER_WAIT_S) -> None:
        self.config = config
        self.admin = KafkaAdmin(config, group_wait_s=group_wait_s)
        self.produce = Produce(config)

    def close(self) -> None:
        """At shutdown: nothing is left in flight (each produce waited for its answer), so the
        producer goes without waiting; it would otherwise keep reconnecting until exit."""
        self.produce.close()
        self.admin.close()


def _check_csrf(request: Request) -> None:
    """The broker-served API's rule, from the same function (see shoal.cross_site)."""
    refused = admin_refusal(request.method, request.headers)
    if refused is not None:
        raise ConsoleError(refused.status, refused.slug, refused.message)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise ConsoleError(400, "invalid_json", f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ConsoleError(400, "invalid_json", "the body must be a JSON object")
    return body


def _int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ConsoleError(400, "invalid_parameter", f"{name} must be an integer") from exc


Action = Callable[[Backend, Request], Awaitable[Any]]


def _json_endpoint(
    backend: Backend, action: Action, status: int
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            decode_path_params(request.scope)
            _check_csrf(request)
            response = JSONResponse(await action(backend, request), status_code=status)
        except ConsoleError as exc:
            if exc.slug == "broker_unreachable":  # see KafkaAdmin.renew
                backend.admin.renew()
            response = JSONResponse(
                {"error": exc.slug, "message": exc.message}, status_code=exc.status
            )
        # Answers echo what callers sent (names, keys, values): never sniffed as HTML.
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return endpoint


async def _list_topics(backend: Backend, request: Request) -> Any:
    return await run_in_threadpool(backend.admin.list_topics)


async def _create_topic(backend: Backend, request: Request) -> Any:
    body = await _body(request)
    name, partitions = body.get("name"), body.get("partitions", 1)
    if not isinstance(name, str) or not isinstance(partitions, int):
        raise ConsoleError(400, "invalid_field", "name must be a string, partitions an integer")
    configs = body.get("configs", {})
    if not isinstance(configs, dict):
        raise ConsoleError(400, "invalid_field", "configs must be an object")
    return await run_in_threadpool(backend.admin.create_topic, name, partitions, configs)


async def _describe_topic(backend: Backend, request: Request) -> Any:
    return await run_in_threadpool(backend.admin.describe_topic, request.path_params["topic"])


async def _delete_topic(backend: Backend, request: Request) -> Any:
    name = request.path_params["topic"]
    if request.query_params.get("confirm") != name:
        raise ConsoleError(
            400, "confirmation_required", "repeat the topic's name in ?confirm= to delete it"
        )
    return await run_in_threadpool(backend.admin.delete_topic, name)


async def _alter_configs(backend: Backend, request: Request) -> Any:
    body = await _body(request)
    unknown = set(body) - {"set", "delete", "append", "subtract"}
    if unknown:
        raise ConsoleError(400, "invalid_field", f"unknown fields {sorted(unknown)}")
    return await run_in_threadpool(backend.admin.alter_configs, request.path_params["topic"], body)


def _page_starts(
    backend: Backend, request: Request, topic: str, marks: dict[int, list[int]], limit: int
) -> dict[int, int]:
    """On a worker thread: where each partition's page starts (cursor, or from=...)."""
    query = request.query_params
    if query.get("cursor"):
        return _cursor(query["cursor"], marks)
    start = query.get("from", "oldest")
    if start not in STARTS:
        raise ConsoleError(400, "invalid_parameter", f"from must be one of {', '.join(STARTS)}")
    number = _int(request, start) if start in ("offset", "timestamp") else None
    return start_offsets(backend.admin, topic, marks, start, number, limit)


async def _query(
    backend: Backend, request: Request, limit: int
) -> tuple[Filters, dict[int, int], dict[int, int]]:
    """A browser query's filters, and each chosen partition's start and end offsets."""
    topic = request.path_params["topic"]
    query = request.query_params
    filters = Filters(
        query.get("key") or None, query.get("value") or None, query.get("header") or None
    )
    summary = await run_in_threadpool(backend.admin.describe_topic, topic)
    marks = {
        p["partition"]: [p["low_watermark"], p["high_watermark"]] for p in summary["partitions"]
    }
    chosen = _int(request, "partition")
    if chosen is not None:
        if chosen not in marks:
            raise ConsoleError(404, "unknown_topic_or_partition", f"no partition {topic}-{chosen}")
        marks = {chosen: marks[chosen]}
    starts = await run_in_threadpool(_page_starts, backend, request, topic, marks, limit)
    until = _int(request, "until")
    if until is not None and until < 0:
        raise ConsoleError(400, "invalid_parameter", "until is in milliseconds since the epoch")
    ends = await run_in_threadpool(end_offsets, backend.admin, topic, marks, until)
    return filters, {p: min(at, ends[p]) for p, at in starts.items()}, ends


async def _browse(backend: Backend, request: Request) -> Any:
    limit = _int(request, "limit") or DEFAULT_PAGE_SIZE
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ConsoleError(400, "invalid_page_size", f"limit must be 1 to {MAX_PAGE_SIZE}")
    filters, starts, ends = await _query(backend, request, limit)
    topic = request.path_params["topic"]
    return await run_in_threadpool(read_page, backend.config, topic, starts, ends, limit, filters)


def _export_endpoint(backend: Backend) -> Callable[[Request], Awaitable[Response]]:
    """``GET .../messages/export``: every match of the query, streamed page by page (the
    broker-served API's answer, from shoal.server.console.export)."""

    async def endpoint(request: Request) -> Response:
        decode_path_params(request.scope)
        topic = request.path_params["topic"]
        fmt = request.query_params.get("format", "json")
        try:
            if fmt not in FORMATS:
                raise ConsoleError(
                    400, "invalid_parameter", f"format must be one of {', '.join(FORMATS)}"
                )
            filters, starts, ends = await _query(backend, request, EXPORT_PAGE_SIZE)
        except ConsoleError as exc:
            response = JSONResponse({"error": exc.slug, "message": exc.message}, exc.status)
            response.headers["X-Content-Type-Options"] = "nosniff"
            return response

        async def pages() -> AsyncIterator[ExportPage]:
            positions = starts
            read_bytes = 0  # decoded: librdkafka decompresses
            scan_bytes_max = EXPORT_SCAN_BYTES_MAX
            while any(positions[p] < ends[p] for p in positions):
                if read_bytes >= scan_bytes_max:
                    yield ExportPage([], positions, scan_cap_bytes=scan_bytes_max)
                    break
                page, read = await run_in_threadpool(
                    read_page_counted,
                    backend.config,
                    topic,
                    positions,
                    ends,
                    EXPORT_PAGE_SIZE,
                    filters,
                    shown_bytes=None,  # an export writes values whole
                )
                read_bytes += read
                following = _cursor(page["next_cursor"], {p: [0, e] for p, e in ends.items()})
                yield ExportPage(page["messages"], following)
                if following == positions:  # no progress: nothing more can be read
                    break
                positions = following

        return StreamingResponse(
            export_text(pages(), fmt), media_type=FORMATS[fmt], headers=export_headers(topic, fmt)
        )

    return endpoint


async def _produce(backend: Backend, request: Request) -> Any:
    body = await _body(request)
    partition = body.get("partition")
    if partition is not None and not isinstance(partition, int):
        raise ConsoleError(400, "invalid_field", "partition must be an integer")
    raw_headers = body.get("headers") or []
    if not isinstance(raw_headers, list):
        raise ConsoleError(400, "invalid_field", "headers must be a list")
    headers: list[tuple[str, str | bytes | None]] = []
    for h in raw_headers:
        if not isinstance(h, dict) or not isinstance(h.get("key"), str):
            raise ConsoleError(400, "invalid_field", "each header needs a string key")
        headers.append((h["key"], decode_bytes(h.get("value"), "header value")))
    key, value = decode_bytes(body.get("key"), "key"), decode_bytes(body.get("value"), "value")
    topic = request.path_params["topic"]
    redrive_from = body.get("redrive_from")
    if redrive_from is not None:
        if not isinstance(redrive_from, str):
            raise ConsoleError(400, "invalid_field", "redrive_from must be a topic name")
        chosen = body.get("redrive_target_chosen", False)
        if not isinstance(chosen, bool):
            raise ConsoleError(400, "invalid_field", "redrive_target_chosen must be a boolean")
        await _check_redrive(backend, redrive_from, topic, chosen=chosen)
    return await run_in_threadpool(backend.produce.send, topic, partition, key, value, headers)


async def _check_redrive(backend: Backend, dlq: str, target: str, *, chosen: bool) -> None:
    """The broker-served API's rule (shoal.server.console.redrive): a redrive goes only to an
    existing, non-internal topic other than its DLQ."""
    await run_in_threadpool(backend.admin.describe_topic, dlq)  # 404 when there is no DLQ
    exists, internal = await run_in_threadpool(backend.admin.topic_kind, target)
    refused = redrive_refusal(target, dlq, exists=exists, internal=internal, chosen=chosen)
    if refused is not None:
        raise ConsoleError(400, REDRIVE_REFUSED, refused)


async def _list_groups(backend: Backend, request: Request) -> Any:
    return await run_in_threadpool(backend.admin.list_groups)


async def _describe_group(backend: Backend, request: Request) -> Any:
    return await run_in_threadpool(backend.admin.describe_group, request.path_params["group"])


async def _reset(backend: Backend, request: Request) -> Any:
    group = request.path_params["group"]
    body = await _body(request)
    topic, to, value = body.get("topic"), body.get("to"), body.get("value")
    partitions, dry_run = body.get("partitions"), body.get("dry_run", True)
    if not isinstance(topic, str) or to not in RESET_TO:
        raise ConsoleError(400, "invalid_field", f"topic is required; to is one of {RESET_TO}")
    if value is not None and not isinstance(value, int):
        raise ConsoleError(400, "invalid_field", "value must be an integer")
    if partitions is not None and not (
        isinstance(partitions, list) and all(isinstance(p, int) for p in partitions)
    ):
        raise ConsoleError(400, "invalid_field", "partitions must be a list of integers")
    admin = backend.admin
    rows = await run_in_threadpool(admin.reset_offsets, group, topic, partitions, to, value)
    if dry_run is False:
        await run_in_threadpool(admin.commit, group, rows)
    return {"group_id": group, "dry_run": dry_run is not False, "partitions": rows}


async def _overview(backend: Backend, request: Request) -> Any:
    return await run_in_threadpool(backend.admin.overview)


async def _acls(backend: Backend, request: Request) -> Any:
    return await run_in_threadpool(backend.admin.acls)


async def _users(backend: Backend, request: Request) -> Any:
    return await run_in_threadpool(backend.admin.users)


async def _create_acl(backend: Backend, request: Request) -> Any:
    body = await _body(request)
    return await run_in_threadpool(backend.admin.create_acl, body)


async def _delete_acl(backend: Backend, request: Request) -> Any:
    body = await _body(request)
    return await run_in_threadpool(backend.admin.delete_acl, body)


async def _set_user(backend: Backend, request: Request) -> Any:
    body = await _body(request)
    return await run_in_threadpool(backend.admin.set_user, request.path_params["user"], body)


async def _delete_user(backend: Backend, request: Request) -> Any:
    user, mechanism = request.path_params["user"], request.query_params.get("mechanism")
    return await run_in_threadpool(backend.admin.delete_user, user, mechanism)


ROUTES: Final[tuple[tuple[str, str, Action, int], ...]] = (
    ("/topics", "GET", _list_topics, 200),
    ("/topics", "POST", _create_topic, 201),
    ("/topics/{topic}", "GET", _describe_topic, 200),
    ("/topics/{topic}", "DELETE", _delete_topic, 200),
    ("/topics/{topic}/configs", "PATCH", _alter_configs, 200),
    ("/topics/{topic}/messages", "GET", _browse, 200),
    ("/topics/{topic}/messages", "POST", _produce, 201),
    ("/groups", "GET", _list_groups, 200),
    ("/groups/{group}", "GET", _describe_group, 200),
    ("/groups/{group}/offsets/reset", "POST", _reset, 200),
    ("/broker", "GET", _overview, 200),
    ("/acls", "GET", _acls, 200),
    ("/users", "GET", _users, 200),
    ("/acls", "POST", _create_acl, 201),
    ("/acls", "DELETE", _delete_acl, 200),
    ("/users/{user}", "PUT", _set_user, 200),
    ("/users/{user}", "DELETE", _delete_user, 200),
)
"""(path under /api/v1, method, action, success status): the broker-served API's routes."""


def _api_routes(backend: Backend) -> list[Route]:
    export = Route("/api/v1/topics/{topic}/messages/export", _export_endpoint(backend))
    return [export] + [
        Route("/api/v1" + path, _json_endpoint(backend, action, status), methods=[method])
        for path, method, action, status in ROUTES
    ]


def _cursor(raw: str, marks: dict[int, list[int]]) -> dict[int, int]:
    starts = {}
    try:
        for item in raw.split(","):
            partition, offset = item.split(":")
            starts[int(partition)] = int(offset)
    except ValueError as exc:
        raise ConsoleError(
            400, "invalid_parameter", f"cursor {raw!r} is not a page cursor"
        ) from exc
    if set(starts) != set(marks):
        raise ConsoleError(400, "invalid_parameter", "the cursor is for other partitions")
    for p, at in starts.items():
        low, high = marks[p]
        if not low <= at <= high:
            raise ConsoleError(
                400, "offset_out_of_range", f"cursor offset {at} is outside [{low}, {high}]"
            )
    return starts


DECODE_ROUNDS_MAX: Final = 3
"""Percent-decodings a forwarded path segment is checked through (``%252e`` is ``%2e``)."""


def _dot_segment(raw_path: str) -> str | None:
    """The first raw segment that is empty, ``.`` or ``..`` in any percent-encoding, or None:
    the forward must not be resolved by the client to a path outside the registry's API."""
    for segment in raw_path.split("/")[1:]:
        text = segment
        for _ in range(DECODE_ROUNDS_MAX):
            text = unquote(text)
        if text in ("", ".", ".."):
            return segment
    return None


def _registry_routes(registry_url: str | None) -> list[Route]:
    """Confluent's registry API, forwarded as is (status, body, content type) to ``--registry``;
    without one, a registry-shaped 404 that says how to configure it."""

    async def forward(request: Request) -> Response:
        try:  # a write through this process needs the header too: no cross-site forms
            _check_csrf(request)
        except ConsoleError as exc:
            return JSONResponse({"error_code": exc.status, "message": exc.message}, exc.status)
        bad = _dot_segment(request.scope["path"])
        if bad is not None:  # httpx would resolve it: the request could leave the registry API
            return JSONResponse(
                {"error_code": 400, "message": f"path segment {bad!r} is not allowed"},
                status_code=400,
            )
        if registry_url is None:
            return JSONResponse(
                {"error_code": 404, "message": "no schema registry: start with --registry URL"},
                status_code=404,
            )
        async with httpx.AsyncClient(base_url=registry_url, timeout=REGISTRY_TIMEOUT_S) as client:
            try:
                answer = await client.request(
                    request.method,
                    # The path as the page sent it (the app routes on the raw path): a subject
                    # "a/b" stays one segment, "a%2Fb", as the registry must see it.
                    request.scope["path"],
                    params=request.query_params,
                    content=await request.body(),
                    headers={
                        k: v
                        for k, v in request.headers.items()
                        if k.lower() in ("content-type", "accept", "authorization")
                    },
                )
            except httpx.HTTPError as exc:
                return JSONResponse(
                    {"error_code": 502, "message": f"schema registry unreachable: {exc}"},
                    status_code=502,
                )
        response = Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type"),
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    methods = ["GET", "POST", "PUT", "DELETE"]
    return [
        route
        for top in REGISTRY_PATHS
        for route in (
            Route(f"/{top}", forward, methods=methods),
            Route(f"/{top}/{{rest:path}}", forward, methods=methods),
        )
    ]


def build_console_app(
    config: dict[str, str],
    registry_url: str | None = None,
    *,
    loopback_only: bool = False,
    backend: Backend | None = None,
) -> ASGIApp:
    """``config``: librdkafka settings of the console's Kafka clients. ``loopback_only``: it
    listens on loopback, so it answers only requests for a loopback Host (the console has no
    authentication of its own: see :mod:`shoal.server.host_guard` on DNS rebinding).
    ``backend``: one made by the caller (a test that reaches its group worker), else one for
    ``config``; the app closes it at shutdown."""
    backend = backend or Backend(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        backend.close()

    # Routed on the raw path: a group id or a subject may hold a "/" (see shoal.raw_path).
    return match_on_raw_path(
        Starlette(
            routes=[*console_routes(), *_api_routes(backend), *_registry_routes(registry_url)],
            middleware=[Middleware(LoopbackHostGuard)] if loopback_only else [],
            lifespan=lifespan,
        )
    )
