"""A Fetch's record bytes are copied once in user space: from the page cache into the buffer
the segment read fills, and that very buffer is what the socket's writev is handed.

Seams: the segment file's cached read and the writer's ``os.writev`` are wrapped to record the
buffers they return and receive; the broker runs in this process (embedded), a wire client
produces and fetches over TCP.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.server import gather_write
from shoal.storage import fs as storage_fs
from tests.server.wire import WireClient, batch_of, record_values

pytestmark = pytest.mark.integration

RECORDS = 50
VALUE_BYTES = 2048


def test_the_buffer_read_from_the_segment_is_the_buffer_written_to_the_socket(
    shoal_broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = threading.Lock()
    read: list[bytearray] = []
    written: list[list[memoryview]] = []
    real_read = storage_fs.OsFile.pread_cached
    real_writev = os.writev

    def recording_read(self: storage_fs.OsFile, size: int, position: int) -> bytearray | None:
        data = real_read(self, size, position)
        if data is not None and size >= RECORDS * VALUE_BYTES:
            with lock:
                read.append(data)
        return data

    def recording_writev(fd: int, buffers: Any) -> int:
        with lock:
            written.append(list(buffers))
        return real_writev(fd, buffers)

    with WireClient(shoal_broker.bootstrap_servers) as client:
        client.metadata(["copies"])  # auto-creates the topic
        values = [os.urandom(VALUE_BYTES) for _ in range(RECORDS)]
        assert client.produce("copies", 0, batch_of(values)).error_code == 0
        monkeypatch.setattr(storage_fs.OsFile, "pread_cached", recording_read)
        monkeypatch.setattr(gather_write.os, "writev", recording_writev)
        fetched = client.fetch("copies", 0, 0, max_bytes=4 << 20)
    monkeypatch.undo()

    assert fetched.error_code == 0
    assert record_values(fetched.records) == values
    assert len(read) == 1, "one read of the records' bytes"
    records_buffer = read[0]
    handed_over = [view for call in written for view in call]
    # The socket got a view of the very bytearray the read filled: not a copy of it.
    assert any(view.obj is records_buffer for view in handed_over), (
        "the records reached writev only as a copy of the buffer the segment read filled"
    )
