"""Resources under abuse: each scenario has a stated bound, and a well-behaved client is still
served while it lasts.

Figures (RSS, descriptors) are printed for the README's reliability table (``pytest -s``); the
assertions are the bounds, never a time. Quick mode in ``make test``; the full mode's sizes
come from ``SHOAL_RELIABILITY_IDLE_CONNECTIONS`` and ``SHOAL_RELIABILITY_PARTITIONS``.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Final

import pytest

from tests.server.wire import WireClient, batch_of, host_port, record_values, request_frame
from tests.support.broker import BrokerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

IDLE_CONNECTIONS: Final = int(os.environ.get("SHOAL_RELIABILITY_IDLE_CONNECTIONS", "1000"))
IDLE_CONNECTION_BYTES_MAX: Final = 64 * 1024
"""What one idle connection may cost the broker: its transport, reader and tasks (the read
buffer is empty while idle)."""
PARTITIONS: Final = int(os.environ.get("SHOAL_RELIABILITY_PARTITIONS", "2000"))
OPEN_FILES_SLACK: Final = 256
"""Descriptors beyond the file-handle pool's bound: sockets, the data directory's lock, the
Python runtime's own."""
DESCRIPTOR_LIMIT: Final = 256
"""The broker's ``ulimit -n`` in the exhaustion test: well under the connections thrown at it."""


def _healthy(bootstrap: str, topic: str, value: bytes) -> None:
    """A well-behaved client: produce one record and read it back."""
    with WireClient(bootstrap) as client:
        client.metadata([topic])
        produced = client.produce(topic, 0, batch_of([value]))
        assert produced.error_code == 0
        fetched = client.fetch(topic, 0, produced.base_offset)
        assert fetched.error_code == 0
        assert record_values(fetched.records) == [value]


@contextlib.contextmanager
def _idle_connections(bootstrap: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections, each having said one ApiVersions and then nothing more."""
    host, port = host_port(bootstrap)
    hello = request_frame(18, 3, {"client_software_name": "idle", "client_software_version": "1"})
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=30)
            sock.sendall(hello)
            sockets.append(sock)
        for sock in sockets:  # every one was really accepted and answered
            assert sock.recv(4), "the broker closed an idle connection it had just accepted"
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_a_thousand_idle_connections_cost_bounded_memory(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    process = broker_process()
    _healthy(process.bootstrap_servers, "warm", b"before")
    before = process.rss_bytes()
    with _idle_connections(process.bootstrap_servers, IDLE_CONNECTIONS):
        during = process.rss_bytes()
        _healthy(process.bootstrap_servers, "warm", b"while idle connections are held")
        fds = process.open_fds()
    per_connection = (during - before) / IDLE_CONNECTIONS
    print(
        f"{IDLE_CONNECTIONS} idle connections: RSS {before / 2**20:.1f} -> {during / 2**20:.1f} "
        f"MiB ({per_connection / 1024:.1f} KiB each), {fds} descriptors"
    )
    assert per_connection <= IDLE_CONNECTION_BYTES_MAX
    assert fds >= IDLE_CONNECTIONS  # they were all held open at once
    _healthy(process.bootstrap_servers, "warm", b"after")


def test_running_out_of_descriptors_refuses_connections_not_the_broker(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    """Past ``ulimit -n`` accept() fails (EMFILE): the broker keeps running and serves again
    once connections are closed."""
    process = broker_process(max_open_files=DESCRIPTOR_LIMIT)
    _healthy(process.bootstrap_servers, "fds", b"before")
    host, port = host_port(process.bootstrap_servers)
    flood: list[socket.socket] = []
    try:
        for _ in range(DESCRIPTOR_LIMIT * 2):
            with contextlib.suppress(OSError):
                flood.append(socket.create_connection((host, port), timeout=5))
        assert process.exit_code is None, process.log_text()[-2000:]
    finally:
        for sock in flood:
            sock.close()
    _healthy_eventually(process, b"after the flood")
    assert process.exit_code is None
    print(f"descriptor flood: {len(flood)} connects at ulimit -n {DESCRIPTOR_LIMIT}; served after")


def _healthy_eventually(process: BrokerProcess, value: bytes, attempts: int = 60) -> None:
    """asyncio pauses accepting for a second after EMFILE: a client may need to try again."""
    for attempt in range(attempts):
        try:
            _healthy(process.bootstrap_servers, "fds", value)
            return
        except (OSError, AssertionError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


def test_thousands_of_partitions_recover_with_one_descriptor_each(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    process = broker_process()
    with WireClient(process.bootstrap_servers) as client:
        created = client.request(
            19,
            7,
            {
                "topics": [
                    {
                        "name": "wide",
                        "num_partitions": PARTITIONS,
                        "replication_factor": 1,
                        "configs": [],
                    }
                ],
                "timeout": datetime.timedelta(minutes=10),
                "validate_only": False,
            },
        )
        assert created.topics[0].error_code == 0, created.topics[0].error_message
        for partition in range(0, PARTITIONS, max(1, PARTITIONS // 200)):
            assert client.produce("wide", partition, batch_of([b"x"])).error_code == 0
    port = process.kafka_port
    process.kill()
    process.start(kafka_port=port)  # recovery opens every partition
    fds, rss = process.open_fds(), process.rss_bytes()
    print(f"{PARTITIONS} partitions after recovery: {fds} descriptors, RSS {rss / 2**20:.1f} MiB")
    # Each partition's active segment stays open (as in Kafka); sealed segments share the
    # handle pool (DEFAULT_MAX_OPEN_FILES, 1024), so descriptors grow by one per partition.
    assert fds <= PARTITIONS + 1024 + OPEN_FILES_SLACK
    _healthy(process.bootstrap_servers, "wide", b"served")
