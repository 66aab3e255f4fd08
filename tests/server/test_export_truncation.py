"""An export its caps stop says so (issue 17): its last entry (JSON) or row (CSV) tells that it
was truncated, at how many messages or read bytes, and the cursor that gets the rest; the same
export from that cursor continues where it stopped. Through the broker-served admin API and
``shoal console`` in front of the same broker, and the byte cap on the broker's pages.

The caps (100,000 messages, 1 GiB read) are lowered for the test: the servers run in this
process and read them when an export starts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any, Final

import httpx
import pytest

from shoal.embedded import EmbeddedBroker
from shoal.records import SimpleRecord, build_batch
from shoal.server.admin.messages import export_pages
from shoal.server.admin.scan import READ_CHUNK_BYTES, ScanFilters
from shoal.server.console import export
from shoal.server.console.export import export_text
from shoal.storage import PartitionLog
from tests.console.support import console_server
from tests.server.admin_support import TIMEOUT_S, admin_client
from tests.storage.support import Harness

pytestmark = pytest.mark.integration

CAP: Final = 25
"""Messages an export writes here at most (EXPORT_MESSAGES_MAX lowered)."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    started = EmbeddedBroker(str(tmp_path_factory.mktemp("export-cap"))).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def clients(broker: EmbeddedBroker) -> Iterator[dict[str, httpx.Client]]:
    with (
        admin_client(broker) as served,
        console_server(broker.bootstrap_servers) as url,
        httpx.Client(
            base_url=f"{url}/api/v1", headers={"X-Shoal-Admin": "1"}, timeout=TIMEOUT_S
        ) as console,
    ):
        yield {"broker": served, "console": console}


def _fill(client: httpx.Client, topic: str, matching: int) -> None:
    if client.get(f"/topics/{topic}").status_code == 200:
        return
    assert client.post("/topics", json={"name": topic, "partitions": 2}).status_code == 201
    for i in range(matching):
        record = {"partition": i % 2, "key": f"k{i}", "value": f"keep-{i}"}
        assert client.post(f"/topics/{topic}/messages", json=record).status_code == 201
    for i in range(7):  # not matching: skipped, never counted
        record = {"partition": i % 2, "value": "drop"}
        assert client.post(f"/topics/{topic}/messages", json=record).status_code == 201


def _export(client: httpx.Client, topic: str, **params: str) -> list[dict[str, Any]]:
    answer = client.get(f"/topics/{topic}/messages/export", params={"value": "keep", **params})
    assert answer.status_code == 200, answer.text
    exported: list[dict[str, Any]] = answer.json()
    return exported


@pytest.mark.parametrize("backend", ["broker", "console"])
def test_an_export_stopped_at_its_message_cap_says_so_and_where_the_rest_is(
    clients: dict[str, httpx.Client], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "EXPORT_MESSAGES_MAX", CAP)
    client = clients[backend]
    topic = "export-cap"
    _fill(clients["broker"], topic, 60)
    seen: list[tuple[int, int]] = []
    params: dict[str, str] = {}
    notes = []
    for _ in range(5):
        entries = _export(client, topic, **params)
        *messages, last = entries
        if not last.get("truncated"):
            messages.append(last)
            seen += [(m["partition"], m["offset"]) for m in messages]
            break
        assert len(messages) == CAP
        assert last["messages_written"] == CAP
        assert last["reason"] == f"stopped at {CAP} messages"
        assert f"cursor={last['next_cursor']}" in last["rest"]
        notes.append(last)
        seen += [(m["partition"], m["offset"]) for m in messages]
        params = {"cursor": last["next_cursor"]}
    assert len(notes) == 2  # 25 + 25, then the last 10 with no note
    assert len(seen) == 60 and len(set(seen)) == 60  # every match once, across the three

    csv = client.get(
        f"/topics/{topic}/messages/export", params={"value": "keep", "format": "csv"}
    ).text.splitlines()
    assert len(csv) == 1 + CAP + 1
    assert csv[-1].startswith(f'"# truncated: stopped at {CAP} messages ({CAP} written);')
    assert f"cursor={notes[0]['next_cursor']}" in csv[-1]


@pytest.mark.parametrize("backend", ["broker", "console"])
def test_an_export_of_exactly_its_cap_is_not_marked_truncated(
    clients: dict[str, httpx.Client], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "EXPORT_MESSAGES_MAX", CAP)
    topic = "export-exactly"
    _fill(clients["broker"], topic, CAP)
    entries = _export(clients[backend], topic)
    assert len(entries) == CAP
    assert not any("truncated" in e for e in entries)
    csv = clients[backend].get(
        f"/topics/{topic}/messages/export", params={"value": "keep", "format": "csv"}
    )
    assert len(csv.text.splitlines()) == 1 + CAP


def test_the_console_export_stopped_at_its_byte_cap_says_so(
    clients: dict[str, httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``shoal console`` counts decoded bytes read: a cap of one byte stops after one page."""
    import shoal.console.web

    monkeypatch.setattr(shoal.console.web, "EXPORT_SCAN_BYTES_MAX", 1)
    topic = "export-cap"
    _fill(clients["broker"], topic, 60)
    *messages, note = _export(clients["console"], topic)
    assert note["truncated"] is True
    assert note["reason"] == "stopped after reading 1 bytes"
    assert note["messages_written"] == len(messages)
    rest = _export(clients["console"], topic, cursor=note["next_cursor"])
    got = {(m["partition"], m["offset"]) for m in messages + rest if "offset" in m}
    assert got  # the rest goes on from the cursor, past what the first part wrote
    assert not {(m["partition"], m["offset"]) for m in messages} & {
        (m["partition"], m["offset"]) for m in rest if "offset" in m
    }


def _export_log(
    plog: PartitionLog, scan_bytes_max: int, starts: dict[int, int]
) -> list[dict[str, Any]]:
    async def collect() -> str:
        pages = export_pages({0: plog}, starts, ScanFilters(), None, scan_bytes_max)
        return "".join([piece async for piece in export_text(pages, "json")])

    parsed: list[dict[str, Any]] = json.loads(asyncio.run(collect()))
    return parsed


def test_the_broker_export_stopped_at_its_byte_cap_says_so_and_goes_on_from_its_cursor() -> None:
    h = Harness()
    h.open()
    plog = h.log()
    value_bytes = READ_CHUNK_BYTES // 4
    for i in range(12):  # three chunks' worth
        plog.append(build_batch([SimpleRecord(value=bytes(value_bytes), timestamp=1_000 + i)]))
    try:
        *first, note = _export_log(plog, READ_CHUNK_BYTES, {0: 0})
        assert note["truncated"] is True
        assert note["reason"] == f"stopped after reading {READ_CHUNK_BYTES:,} bytes"
        assert note["messages_written"] == len(first) < 12
        following = int(note["next_cursor"].removeprefix("0:"))
        assert following == first[-1]["offset"] + 1
        everything = _export_log(plog, 1024**3, {0: following})
        assert [m["offset"] for m in first + everything] == list(range(12))
    finally:
        h.close()
