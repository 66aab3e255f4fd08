"""The message browser (a page of one partition or of all) and producing one message.

Browse: ``GET /topics/{topic}/messages`` with ``partition`` (else all), where to start
(``from=oldest|newest|offset|timestamp`` and ``offset``/``timestamp``, or the ``cursor`` of the
previous page), ``limit`` (at most :data:`MAX_PAGE_SIZE`) and substring filters ``key``,
``value``, ``header``. Reads run on a worker thread (:mod:`shoal.server.admin.scan`). Needs
Read on the topic, as Fetch does. Produce: ``POST /topics/{topic}/messages``, Write on the
topic, through the Produce handler's own append (every check a Kafka producer meets).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from shoal.broker.broker import Broker
from shoal.broker.context import RequestContext
from shoal.broker.handlers.produce import append_records
from shoal.broker.topics import Topic
from shoal.records import DecodedRecord, RecordsError, SimpleRecord, build_batch
from shoal.security.acl import AclOperation, ResourceType
from shoal.server.admin.access import require
from shoal.server.admin.encoding import decode_bytes, encode_bytes
from shoal.server.admin.errors import ApiError, from_kafka
from shoal.server.admin.params import field, field_or, json_object, query_int
from shoal.server.admin.partitioner import partition_for_key
from shoal.server.admin.reads import admin_read
from shoal.server.admin.scan import (
    MAX_SCAN_BYTES,
    PAGE_DECODED_BYTES_MAX,
    Scan,
    ScanFilters,
    scan_partition,
)
from shoal.server.admin.topics import existing_topic
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
from shoal.storage import PartitionLog, StorageError

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 500
SHOWN_BYTES_MAX: Final = 1024 * 1024
"""A browse page shows at most this many bytes of a key, value or header value (with its
size and ``truncated``); an export writes them whole."""
"""Messages per page at most: a page is built in memory and sent whole."""
STARTS: Final = ("oldest", "newest", "offset", "timestamp")
PRODUCE_VERSION: Final = 11
"""The Produce version whose checks a message from the API meets (the newest shoal serves)."""
ACKS_ALL: Final = -1


def _partitions(broker: Broker, topic: Topic, request: Request) -> dict[int, PartitionLog]:
    chosen = query_int(request, "partition")
    indexes = range(topic.partitions) if chosen is None else [chosen]
    logs = {}
    for index in indexes:
        plog = broker.partition(topic.name, index) if 0 <= index < topic.partitions else None
        if plog is None:
            raise ApiError(
                404, "unknown_topic_or_partition", f"partition {topic.name}-{index} is not online"
            )
        logs[index] = plog
    return logs


def _in_range(plog: PartitionLog, name: str, offset: int) -> int:
    start, end = plog.log_start_offset, plog.log_end_offset
    if not start <= offset <= end:
        raise ApiError(
            400,
            "offset_out_of_range",
            f"offset {offset} is outside {name}'s log [{start}, {end}]",
        )
    return offset


def _cursor(raw: str, logs: dict[int, PartitionLog], topic: str) -> dict[int, int]:
    """``partition:offset,...`` as the previous page's ``next_cursor`` gave it."""
    starts = {}
    try:
        for item in raw.split(","):
            partition, offset = item.split(":")
            starts[int(partition)] = int(offset)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"cursor {raw!r} is not a page cursor") from exc
    if set(starts) != set(logs):
        raise ApiError(400, "invalid_parameter", "the cursor is for other partitions")
    return {p: _in_range(logs[p], f"{topic}-{p}", o) for p, o in starts.items()}


def _starts(
    request: Request, logs: dict[int, PartitionLog], topic: str, limit: int
) -> dict[int, int] | int:
    """Where each partition's page starts, or the timestamp to look that up by (on the
    worker thread: the time index is on disk)."""
    cursor = request.query_params.get("cursor")
    if cursor is not None:
        return _cursor(cursor, logs, topic)
    start = request.query_params.get("from", "oldest")
    if start not in STARTS:
        raise ApiError(400, "invalid_parameter", f"from must be one of {', '.join(STARTS)}")
    if start == "oldest":
        return {p: plog.log_start_offset for p, plog in logs.items()}
    if start == "newest":  # the last ``limit`` messages of each partition
        return {
            p: max(plog.log_start_offset, plog.log_end_offset - limit) for p, plog in logs.items()
        }
    value = query_int(request, start)
    if value is None:
        raise ApiError(400, "invalid_parameter", f"from={start} needs the {start} parameter")
    if start == "offset":
        return {p: _in_range(plog, f"{topic}-{p}", value) for p, plog in logs.items()}
    if value < 0:
        raise ApiError(400, "invalid_parameter", "timestamp is in milliseconds since the epoch")
    return value


def _ends(logs: dict[int, PartitionLog], until: int | None) -> dict[int, int]:
    """On a worker thread: where each partition's reading stops: its end, or with ``until``
    (ms) its first record at or after that time (the time index, as ListOffsets by time)."""
    ends = {}
    for partition, plog in logs.items():
        found = None if until is None else plog.offset_for_timestamp(until)
        ends[partition] = plog.log_end_offset if found is None else found[0]
    return ends


def _until(request: Request) -> int | None:
    until = query_int(request, "until")
    if until is not None and until < 0:
        raise ApiError(400, "invalid_parameter", "until is in milliseconds since the epoch")
    return until


def _read_page(
    logs: dict[int, PartitionLog],
    starts: dict[int, int] | int,
    limit: int,
    filters: ScanFilters,
    until: int | None,
) -> tuple[dict[int, Scan], dict[int, int]]:
    """On a worker thread: each partition's matching records from its start, before its end."""
    firsts, ends = _first_offsets(logs, starts), _ends(logs, until)
    share = max(1, PAGE_DECODED_BYTES_MAX // max(1, len(logs)))  # the page's bytes, split
    scans = {
        p: scan_partition(plog, min(firsts[p], ends[p]), limit, filters, ends[p], share)
        for p, plog in logs.items()
    }
    return scans, ends


def _first_offsets(logs: dict[int, PartitionLog], starts: dict[int, int] | int) -> dict[int, int]:
    """On a worker thread: each partition's start; for a timestamp, the first record at or
    after it (its time index), else the end."""
    if not isinstance(starts, int):
        return starts
    firsts = {}
    for partition, plog in logs.items():
        found = plog.offset_for_timestamp(starts)
        firsts[partition] = plog.log_end_offset if found is None else found[0]
    return firsts


def export_format(request: Request) -> str:
    fmt = request.query_params.get("format", "json")
    if fmt not in FORMATS:
        raise ApiError(400, "invalid_parameter", f"format must be one of {', '.join(FORMATS)}")
    return fmt


async def export(broker: Broker, ctx: RequestContext, name: str, request: Request) -> Response:
    """Every message the browser's query (partition, from, filters; no cursor) matches, as a
    streamed JSON or CSV download (see :mod:`shoal.server.console.export`), read a page at a
    time on a worker thread, up to each partition's end when the export began."""
    topic = existing_topic(broker, ctx, name)
    require(broker, ctx, AclOperation.READ, ResourceType.TOPIC, name)
    fmt = export_format(request)
    logs = _partitions(broker, topic, request)
    starts = _starts(request, logs, name, EXPORT_PAGE_SIZE)
    params = request.query_params
    filters = ScanFilters(params.get("key"), params.get("value"), params.get("header"))
    pages = export_pages(logs, starts, filters, _until(request))
    return StreamingResponse(
        export_text(pages, fmt), media_type=FORMATS[fmt], headers=export_headers(name, fmt)
    )


async def export_pages(
    logs: dict[int, PartitionLog],
    starts: dict[int, int] | int,
    filters: ScanFilters,
    until: int | None,
    scan_bytes_max: int = EXPORT_SCAN_BYTES_MAX,
) -> AsyncIterator[ExportPage]:
    """An export's pages, partition after partition, up to each partition's end when the
    export began, reading at most ``scan_bytes_max`` stored bytes in all."""
    firsts = await admin_read(_first_offsets, logs, starts)
    ends = await admin_read(_ends, logs, until)  # the ends when the export began
    positions = {p: min(firsts[p], ends[p]) for p in logs}
    scanned = 0
    for partition, plog in logs.items():
        while positions[partition] < ends[partition] and scanned < scan_bytes_max:
            scan = await admin_read(
                scan_partition,
                plog,
                positions[partition],
                EXPORT_PAGE_SIZE,
                filters,
                ends[partition],
                max_scan_bytes=min(MAX_SCAN_BYTES, scan_bytes_max - scanned),
            )
            scanned += scan.scanned
            progressed = scan.next_offset > positions[partition]
            positions[partition] = max(positions[partition], scan.next_offset)
            yield ExportPage([_message(partition, r) for r in scan.records], dict(positions))
            if not progressed:  # nothing more to read (retention, a gap)
                break
    if scanned >= scan_bytes_max and any(positions[p] < ends[p] for p in logs):
        yield ExportPage([], dict(positions), scan_cap_bytes=scan_bytes_max)


def _message(partition: int, record: DecodedRecord, limit: int | None = None) -> dict[str, Any]:
    """A record as JSON; with ``limit`` (bytes), longer keys and values are cut short."""
    return {
        "partition": partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": encode_bytes(record.key, limit),
        "value": encode_bytes(record.value, limit),
        "headers": [{"key": k, "value": encode_bytes(v, limit)} for k, v in record.headers],
    }


async def browse(broker: Broker, ctx: RequestContext, name: str, request: Request) -> Response:
    topic = existing_topic(broker, ctx, name)
    require(broker, ctx, AclOperation.READ, ResourceType.TOPIC, name)
    limit = query_int(request, "limit", DEFAULT_PAGE_SIZE) or 0
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ApiError(
            400, "invalid_page_size", f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}"
        )
    logs = _partitions(broker, topic, request)
    starts = _starts(request, logs, name, limit)
    params = request.query_params
    filters = ScanFilters(params.get("key"), params.get("value"), params.get("header"))
    try:
        scans, ends = await admin_read(_read_page, logs, starts, limit, filters, _until(request))
    except (StorageError, RecordsError) as exc:
        raise ApiError(500, "read_failed", f"could not read {name}: {exc}") from exc
    # All partitions: the earliest ``limit`` of their pages by timestamp; each partition's
    # cursor moves past what this page shows, no further.
    candidates = sorted(
        ((r.timestamp, p, r.offset, r) for p, scan in scans.items() for r in scan.records),
        key=lambda c: c[:3],
    )[:limit]
    shown: dict[int, int] = {}
    for _, partition, _, _ in candidates:
        shown[partition] = shown.get(partition, 0) + 1
    cursor = {}
    for partition, scan in scans.items():
        taken = shown.get(partition, 0)
        cursor[partition] = (
            scan.next_offset if taken == len(scan.records) else scan.records[taken].offset
        )
    return JSONResponse(
        {
            "messages": [_message(p, r, SHOWN_BYTES_MAX) for _, p, _, r in candidates],
            "next_cursor": ",".join(f"{p}:{o}" for p, o in sorted(cursor.items())),
            "end_offsets": {str(p): end for p, end in ends.items()},
        }
    )


def _headers(value: object) -> list[tuple[str, bytes | None]]:
    if not isinstance(value, list):
        raise ApiError(400, "invalid_field", "'headers' must be a list of {key, value}")
    headers = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise ApiError(400, "invalid_field", "each header needs a string 'key'")
        headers.append((str(item["key"]), decode_bytes(item.get("value"), "header value")))
    return headers


def _check_redrive(
    broker: Broker, ctx: RequestContext, dlq: str, target: str, *, chosen: bool
) -> None:
    """A produce that says it redrives ``dlq``'s records: only into an existing,
    non-internal topic other than the DLQ (see :mod:`shoal.server.console.redrive`)."""
    existing_topic(broker, ctx, dlq)
    require(broker, ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, target)  # 403 before 404
    topic = broker.topics.get(target)
    refused = redrive_refusal(
        target,
        dlq,
        exists=topic is not None,
        internal=topic is not None and topic.internal,
        chosen=chosen,
    )
    if refused is not None:
        raise ApiError(400, REDRIVE_REFUSED, refused)


async def produce(broker: Broker, ctx: RequestContext, name: str, request: Request) -> Response:
    """``{"partition"?, "key"?, "value"?, "headers"?, "redrive_from"?}``; 201 with where it
    was written. ``redrive_from`` (the console's DLQ redrive) names the DLQ the record comes
    from, and the target is checked as a redrive target (400 ``redrive_target_refused``);
    ``redrive_target_chosen`` (the user named the target) allows other than the DLQ's origin."""
    body = await json_object(request)
    key = decode_bytes(body.get("key"), "key")
    value = decode_bytes(body.get("value"), "value")
    headers = _headers(body.get("headers", []))
    chosen = field(body, "partition", int)
    redrive_from = field(body, "redrive_from", str)
    if redrive_from is not None:
        named = field_or(body, "redrive_target_chosen", bool, False)
        _check_redrive(broker, ctx, redrive_from, name, chosen=named)
    topic = existing_topic(broker, ctx, name)
    require(broker, ctx, AclOperation.WRITE, ResourceType.TOPIC, name)
    if chosen is not None:
        partition = chosen
    elif key is not None:
        partition = partition_for_key(key, topic.partitions)
    else:
        partition = 0  # a keyless record may go anywhere (Kafka's partitioner is sticky)
    try:
        batch = build_batch(
            [SimpleRecord(key, value, headers)], base_timestamp=broker.clock.now_ms()
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_field", f"no record can hold this: {exc}") from exc
    outcome = append_records(broker, topic, partition, batch, PRODUCE_VERSION, ACKS_ALL)
    if outcome.error_code:
        raise from_kafka(outcome.error_code, outcome.error_message or "the broker refused it")
    if outcome.durable is not None:  # acks=all: answered once it is on disk
        await outcome.durable
    return JSONResponse(
        {"topic": name, "partition": partition, "offset": outcome.base_offset}, status_code=201
    )
