"""The broker overview (console's first page): identity, disk, and traffic counters.

Counters, not rates: a rate needs two readings, and the caller (the console polls every few
seconds) takes the difference, so the broker keeps no per-caller state.
"""

from __future__ import annotations

import shutil
from importlib import metadata
from typing import Any

from starlette.responses import JSONResponse, Response

from shoal.broker.broker import Broker
from shoal.broker.context import RequestContext
from shoal.security.acl import AclOperation, ResourceType
from shoal.server.admin.reads import admin_read


def _disk(path: str) -> dict[str, int] | None:
    """The data directory's filesystem (a statvfs: on a worker thread, as a slow or hung
    network filesystem must not stall the event loop the Kafka listener shares)."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return {"capacity_bytes": usage.total, "free_bytes": usage.free}


def _version() -> str:
    """The installed distribution's version (``import shoal`` would load the framework, a
    layer above the server)."""
    try:
        return metadata.version("shoal")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


async def broker_overview(broker: Broker, ctx: RequestContext) -> Response:
    """Counts and traffic cover only the topics the principal may describe, as Metadata does."""
    names = [t.name for t in broker.topics]
    allowed = broker.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names)
    partitions = sum(t.partitions for t in broker.topics if t.name in allowed)
    traffic: list[dict[str, Any]] = []
    totals = {"bytes_in": 0, "records_in": 0, "bytes_out": 0, "records_out": 0}
    for name, figures in sorted(broker.stats.topics.items()):
        if name not in allowed:
            continue
        row = {key: getattr(figures, key) for key in totals}
        for key, value in row.items():
            totals[key] += value
        traffic.append({"topic": name, **row})
    disk = await admin_read(_disk, broker.logs.path)
    return JSONResponse(
        {
            "node_id": broker.config.node_id,
            "version": _version(),
            "topics": len(allowed),
            "partitions": partitions,
            "disk": disk,
            "traffic": totals,
            "topic_traffic": traffic,
        }
    )
