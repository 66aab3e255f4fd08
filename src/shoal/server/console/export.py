"""Exporting every message a browser query matches, as JSON or CSV, streamed: the text both
admin API backends (the broker's and ``shoal console``'s) send for
``GET /api/v1/topics/{topic}/messages/export``.

Messages come in the API's shape (``partition``, ``offset``, ``timestamp``, ``key``, ``value``,
``headers``; bytes as ``{"encoding", "data"}``), page by page; nothing holds more than a page.
An export stops at each partition's end as it was when the export began (a busy topic would
otherwise never end) and after :data:`EXPORT_MESSAGES_MAX` messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final

EXPORT_MESSAGES_MAX: Final = 100_000
"""Messages one export writes at most: a few hundred MiB of JSON for 1 KiB values, which a
browser still saves; a larger extract is a job for a consumer (``shoal consume``)."""
EXPORT_SCAN_BYTES_MAX: Final = 1024 * 1024 * 1024
"""Bytes one export reads at most over all its partitions (1 GiB; stored bytes for the broker,
decoded ones for ``shoal console``, whose client decompresses): a filter that matches little
cannot make an export read a whole huge topic; the file ends there, as after
:data:`EXPORT_MESSAGES_MAX` messages."""
EXPORT_PAGE_SIZE: Final = 500
"""Messages read per step: the browser's largest page."""
FORMATS: Final = {"json": "application/json", "csv": "text/csv"}
CSV_COLUMNS: Final = ("partition", "offset", "timestamp", "key", "value", "headers")
_FORMULA_START: Final = re.compile(r"^[=+\-@\t\r]")
"""A spreadsheet runs a cell starting with one of these as a formula (CSV injection)."""
_NEEDS_QUOTES: Final = re.compile(r'[",\n\r]')


def csv_cell(value: object) -> str:
    """One CSV cell: a would-be formula gets a leading apostrophe (shown as text), quotes as
    RFC 4180 says. The page's own export of one page does the same."""
    cell = "" if value is None else str(value)
    if _FORMULA_START.match(cell):
        cell = "'" + cell
    return '"' + cell.replace('"', '""') + '"' if _NEEDS_QUOTES.search(cell) else cell


def bytes_cell(value: Mapping[str, str] | None) -> str | None:
    """API bytes as a cell: UTF-8 text as is, anything else ``base64:...``."""
    if value is None:
        return None
    return value["data"] if value["encoding"] == "utf-8" else "base64:" + value["data"]


def csv_row(message: Mapping[str, Any]) -> str:
    headers = ";".join(f"{h['key']}={bytes_cell(h['value']) or ''}" for h in message["headers"])
    cells = (
        message["partition"],
        message["offset"],
        message["timestamp"],
        bytes_cell(message["key"]),
        bytes_cell(message["value"]),
        headers,
    )
    return ",".join(csv_cell(c) for c in cells) + "\r\n"


async def export_text(
    pages: AsyncIterator[Sequence[Mapping[str, Any]]], fmt: str
) -> AsyncIterator[str]:
    """The export file, piece by piece: a JSON array (one message a line) or CSV with a
    header row, of at most :data:`EXPORT_MESSAGES_MAX` messages."""
    written = 0
    yield "[" if fmt == "json" else ",".join(CSV_COLUMNS) + "\r\n"
    async for page in pages:
        for message in page[: EXPORT_MESSAGES_MAX - written]:
            if fmt == "json":
                yield ("\n" if written == 0 else ",\n") + json.dumps(message)
            else:
                yield csv_row(message)
            written += 1
        if written >= EXPORT_MESSAGES_MAX:
            break
    if fmt == "json":
        yield "\n]\n"


def export_headers(topic: str, fmt: str) -> dict[str, str]:
    """A download named after the topic (only safe characters in the file name)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", topic) or "messages"
    return {
        "Content-Disposition": f'attachment; filename="{safe}.{fmt}"',
        "X-Content-Type-Options": "nosniff",
    }
