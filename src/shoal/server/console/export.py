"""Exporting every message a browser query matches, as JSON or CSV, streamed: the text both
admin API backends (the broker's and ``shoal console``'s) send for
``GET /api/v1/topics/{topic}/messages/export``.

Messages come in the API's shape (``partition``, ``offset``, ``timestamp``, ``key``, ``value``,
``headers``; bytes as ``{"encoding", "data"}``), page by page; nothing holds more than a page.
An export stops at each partition's end as it was when the export began (a busy topic would
otherwise never end), after :data:`EXPORT_MESSAGES_MAX` messages, or after reading
:data:`EXPORT_SCAN_BYTES_MAX`; stopped by a cap, it ends with a note saying so and where to go
on (:func:`truncation_note`).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class ExportPage:
    """One step of an export: the matching messages read, and where each partition's reading
    goes on after them."""

    messages: Sequence[Mapping[str, Any]]
    cursor: Mapping[int, int]
    """partition → the offset its reading continues from after this page."""
    scan_cap_bytes: int | None = None
    """The byte cap (:data:`EXPORT_SCAN_BYTES_MAX`) the reading stopped at, with records left
    to read; None while it goes on."""


def cursor_text(cursor: Mapping[int, int]) -> str:
    """A cursor as the browser's ``cursor=`` parameter takes it: ``0:120,1:98``."""
    return ",".join(f"{p}:{o}" for p, o in sorted(cursor.items()))


def _resume_at(page: ExportPage, written: int) -> dict[int, int]:
    """Where to go on when only the first ``written`` messages of ``page`` were written: each
    partition at its first message left out, or where the page left it."""
    cursor = dict(page.cursor)
    for message in page.messages[written:]:
        partition = message["partition"]
        cursor[partition] = min(cursor.get(partition, message["offset"]), message["offset"])
    return cursor


def truncation_note(reason: str, written: int, cursor: Mapping[int, int]) -> dict[str, Any]:
    """The last entry of an export its caps stopped: why, and how to get the rest."""
    following = cursor_text(cursor)
    return {
        "truncated": True,
        "reason": reason,
        "messages_written": written,
        "next_cursor": following,
        "rest": f"request the same export with cursor={following} (from= is then ignored); "
        "for extracts this large, a consumer (shoal consume) reads without caps",
    }


async def export_text(
    pages: AsyncIterator[ExportPage], fmt: str, messages_max: int | None = None
) -> AsyncIterator[str]:
    """The export file, piece by piece: a JSON array (one message a line) or CSV with a
    header row, of at most ``messages_max`` (:data:`EXPORT_MESSAGES_MAX`) messages.

    An export its caps stopped says so in its last entry (:func:`truncation_note`): in JSON an
    object with ``"truncated": true`` after the messages, in CSV a last row whose first cell
    starts with ``# truncated``; both give the cursor to request the rest with. An export
    that ends exactly at the message cap reads on (within the byte cap) until it knows whether
    more messages match."""
    limit = EXPORT_MESSAGES_MAX if messages_max is None else messages_max
    written = 0
    note: dict[str, Any] | None = None
    cursor: Mapping[int, int] = {}
    yield "[" if fmt == "json" else ",".join(CSV_COLUMNS) + "\r\n"
    async for page in pages:
        room = limit - written
        if room <= 0 and page.messages:
            note = truncation_note(f"stopped at {limit:,} messages", written, cursor)
            break
        for message in page.messages[:room]:
            if fmt == "json":
                yield ("\n" if written == 0 else ",\n") + json.dumps(message)
            else:
                yield csv_row(message)
            written += 1
        cursor = _resume_at(page, max(0, room))
        if len(page.messages) > room:
            note = truncation_note(f"stopped at {limit:,} messages", written, cursor)
            break
        if page.scan_cap_bytes is not None:
            read = f"stopped after reading {page.scan_cap_bytes:,} bytes"
            note = truncation_note(read, written, cursor)
            break
    if note is not None:
        if fmt == "json":
            yield ("\n" if written == 0 else ",\n") + json.dumps(note)
        else:
            text = f"# truncated: {note['reason']} ({written:,} written); {note['rest']}"
            yield csv_cell(text) + "\r\n"
    if fmt == "json":
        yield "\n]\n"


def export_headers(topic: str, fmt: str) -> dict[str, str]:
    """A download named after the topic (only safe characters in the file name)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", topic) or "messages"
    return {
        "Content-Disposition": f'attachment; filename="{safe}.{fmt}"',
        "X-Content-Type-Options": "nosniff",
    }
