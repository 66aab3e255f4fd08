"""A client that pipelines large Fetch requests and never reads slows only itself.

The attack that once drove ``shoal broker`` from 72 MB to 7.1 GB of RSS in 20 seconds: four
connections, each writing 64 Fetch requests of 55 MiB (fetch.max.bytes) and never reading a
byte. The broker must keep its memory under a stated bound while a well-behaved client on
another connection keeps getting answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest

from tests.server.wire import FETCH_VERSION, HealthyClient, WireClient, batch_of, fetch_values
from tests.support.broker import BrokerProcess

pytestmark = pytest.mark.integration

RSS_BYTES_MAX: Final = 512 * 1024 * 1024
"""The bound the broker's resident memory must stay under during the attack."""

ATTACKERS: Final = 4
FETCHES_PER_ATTACKER: Final = 64
FETCH_BYTES: Final = 55 * 1024 * 1024
PARTITIONS: Final = 4
RECORD_BYTES: Final = 512 * 1024
RECORDS_PER_PARTITION: Final = 30
"""60 MiB in all: more than one Fetch may return, so every response is as large as allowed."""

ATTACK_SECONDS: Final = 8.0
"""How long the attack is held while memory is sampled and the healthy client works. Unbounded,
the broker grew by about 350 MB a second (7.1 GB in 20 s): the 512 MiB bound is passed in the
first two seconds, so 8 s shows the bound holds with room to spare (CI time)."""


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def hostile_fetch(topic: str) -> dict[str, Any]:
    values = fetch_values(topic, 0)
    values["max_bytes"] = FETCH_BYTES
    values["topics"][0]["partitions"] = [
        {
            "partition": p,
            "current_leader_epoch": -1,
            "fetch_offset": 0,
            "log_start_offset": -1,
            "partition_max_bytes": FETCH_BYTES,
        }
        for p in range(PARTITIONS)
    ]
    return values


def attack(bootstrap: str, topic: str) -> socket.socket:
    """One connection that pipelines every Fetch and then never reads."""
    client = WireClient(bootstrap)
    # A small receive buffer, as a client that stopped reading would soon have anyway.
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    frames = b"".join(
        client.encode(1, FETCH_VERSION, hostile_fetch(topic))[1]
        for _ in range(FETCHES_PER_ATTACKER)
    )
    client.send_raw(frames)
    return client.sock


def sample_peak(read: Callable[[], int], seconds: float, stop: threading.Event) -> int:
    peak = read()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        peak = max(peak, read())
        time.sleep(0.05)
    return peak


@pytest.mark.slow
def test_never_reading_clients_cannot_exhaust_memory(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    process = broker_process(num_partitions=PARTITIONS, message_max_bytes=2 * RECORD_BYTES)
    assert process.process is not None
    pid = process.process.pid
    topic = "hoard"
    with WireClient(process.bootstrap_servers) as loader:
        assert loader.metadata([topic]).topics[0].error_code == 0
        payload = b"x" * RECORD_BYTES
        for partition in range(PARTITIONS):
            for _ in range(RECORDS_PER_PARTITION):
                answer = loader.produce(topic, partition, batch_of([payload]))
                assert answer.error_code == 0, answer
    healthy = HealthyClient(process.bootstrap_servers, "healthy").start()
    attackers: list[socket.socket] = []
    try:
        baseline = rss_bytes(pid)
        attackers = [attack(process.bootstrap_servers, topic) for _ in range(ATTACKERS)]
        stop = threading.Event()
        peak = sample_peak(lambda: rss_bytes(pid), ATTACK_SECONDS, stop)
        # The figure, for a person reading `pytest -s` output (the assertion below bounds it).
        print(f"broker RSS {baseline / 2**20:.0f} MiB before, {peak / 2**20:.0f} MiB at peak")
        # The healthy client kept being answered throughout, and still is.
        healthy.assert_progress(round_trips=20)
        with WireClient(process.bootstrap_servers) as other:
            assert other.metadata([topic]).topics[0].error_code == 0
        assert process.exit_code is None, process.log_text()[-500:]
        assert peak < RSS_BYTES_MAX, (
            f"broker RSS reached {peak / 2**20:.0f} MiB (from {baseline / 2**20:.0f} MiB) "
            f"under {ATTACKERS} never-reading clients; the bound is {RSS_BYTES_MAX / 2**20:.0f}"
        )
    finally:
        for sock in attackers:
            sock.close()
        healthy.stop()
    # Once the hoarding connections are gone the broker serves large Fetches again.
    with WireClient(process.bootstrap_servers) as reader:
        answer = reader.request(1, FETCH_VERSION, hostile_fetch(topic))
        got = sum(len(p.records or b"") for p in answer.responses[0].partitions)
        assert got > 32 * 1024 * 1024, f"a Fetch after the attack returned only {got} bytes"
