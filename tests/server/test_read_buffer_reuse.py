"""Fetch responses a client has not read yet keep their bytes while the broker serves more
reads: the page-cache read buffers are pooled (``shoal.storage.read_buffers``), and one still
held by a connection's transport or response queue must never be filled again.

One client pipelines many Fetches of about a megabyte each and reads nothing for a while (its
receive buffer small), so the kernel's socket buffers fill and the rest of the responses wait
in the broker; another connection meanwhile fetches other batches, which would land in a
reused buffer. Then every response is read and checked against what was produced. On both
event loops: uvloop keeps a reference to unsent bytes rather than copying them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import pytest

from shoal.embedded import EmbeddedBroker
from tests.server.wire import (
    FETCH_VERSION,
    WireClient,
    batch_of,
    fetch_values,
    host_port,
    record_values,
)

pytestmark = pytest.mark.integration

BATCHES = 12
RECORDS_PER_BATCH = 15
VALUE_BYTES = 64 * 1024
"""A batch is just under 1 MB (message.max.bytes): every read of one is pooled."""


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_unread_fetch_responses_keep_their_bytes_while_other_reads_run(
    shoal_broker_factory: Callable[..., EmbeddedBroker], event_loop: str
) -> None:
    broker = shoal_broker_factory(event_loop=event_loop)
    batches = [[os.urandom(VALUE_BYTES) for _ in range(RECORDS_PER_BATCH)] for _ in range(BATCHES)]
    with WireClient(broker.bootstrap_servers) as producer:
        producer.metadata(["held"])  # auto-creates the topic
        for values in batches:
            assert producer.produce("held", 0, batch_of(values)).error_code == 0

    slow = WireClient.__new__(WireClient)
    slow.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sock.settimeout(30)
    slow.sock.connect(host_port(broker.bootstrap_servers))
    slow.client_id = "slow-reader"
    slow._correlation = iter(range(1, 1_000))
    with slow, WireClient(broker.bootstrap_servers) as other:
        # max_bytes=1: each Fetch returns exactly the one batch at its offset.
        asked = [
            (
                slow.send(
                    1, FETCH_VERSION, fetch_values("held", i * RECORDS_PER_BATCH, max_bytes=1)
                ),
                i,
            )
            for i in range(BATCHES)
        ]
        time.sleep(0.5)  # the broker reads them all; their responses back up
        for _ in range(3):
            for i in reversed(range(BATCHES)):
                fetched = other.fetch("held", 0, i * RECORDS_PER_BATCH, max_bytes=1)
                assert record_values(fetched.records) == batches[i]
        for correlation_id, i in asked:
            response = slow.receive(1, FETCH_VERSION, correlation_id)
            partition = response.responses[0].partitions[0]
            assert partition.error_code == 0
            assert record_values(partition.records) == batches[i], f"batch {i} was overwritten"
