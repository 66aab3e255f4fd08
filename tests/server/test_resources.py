"""Resources under abuse: a claimed 2 GiB frame allocates nothing, and connections dropped at any
point (mid-frame, mid-request, while a Fetch is parked) leave no task, file descriptor or
connection behind."""

from __future__ import annotations

import os
import socket
import struct
import tracemalloc
from typing import Final

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ErrorCode
from tests.server.wire import (
    IO_TIMEOUT_S,
    WireClient,
    fetch_values,
    host_port,
    request_frame,
    wait_until,
)
from tests.support.broker import loop_task_count, run_on_loop

I32: Final = struct.Struct(">i")
LINGER_RST: Final = struct.pack("ii", 1, 0)
"""SO_LINGER on with a zero timeout: close() sends RST instead of FIN."""
ALLOCATION_BYTES_MAX: Final = 32 * 1024 * 1024
"""Far below the frames claimed (100 MiB to 2 GiB each, on many connections at once), far
above what the broker allocates meanwhile to serve its healthy traffic."""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def connection_count(broker: EmbeddedBroker) -> int:
    def count() -> int:
        kafka = broker.app.kafka
        assert kafka is not None
        return kafka.connection_count

    return run_on_loop(broker, count)


def fetch_parked(topic: str, correlation_id: int) -> bytes:
    """A Fetch that waits up to 30 s for one byte on an empty partition."""
    return request_frame(
        1,
        11,
        fetch_values(topic, 0, max_wait_ms=30_000, min_bytes=1),
        correlation_id=correlation_id,
    )


def test_claimed_huge_frames_allocate_nothing(shoal_broker: EmbeddedBroker) -> None:
    """Claim 2 GiB (refused: over socket.request.max.bytes) and 100 MiB (allowed, so the broker
    waits for the body) on many connections, send 10 bytes each: the first kind is closed at
    once, and neither makes the broker allocate what was claimed."""
    refused = [2**31 - 1, 100 * 1024 * 1024 + 1]
    waiting = [100 * 1024 * 1024]
    rss_before = rss_bytes()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        sockets = []
        for i in range(40):
            claim = (refused + waiting)[i % 3]
            sock = socket.create_connection(host_port(shoal_broker.bootstrap_servers), IO_TIMEOUT_S)
            sock.sendall(I32.pack(claim) + b"\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff")
            sockets.append((claim, sock))
        for claim, sock in sockets:
            if claim in refused:
                assert sock.recv(1) == b"", f"a {claim}-byte frame was not refused"
        with WireClient(shoal_broker.bootstrap_servers) as client:
            assert client.api_versions().error_code == ErrorCode.NONE
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    held = sum(1 for claim, _ in sockets if claim in waiting)
    assert wait_until(lambda: connection_count(shoal_broker), lambda n: n == held) == held
    for _, sock in sockets:
        sock.close()
    assert peak < ALLOCATION_BYTES_MAX, f"peak Python allocation {peak} bytes"
    assert rss_bytes() - rss_before < ALLOCATION_BYTES_MAX


def test_dropped_connections_leave_nothing_behind(shoal_broker: EmbeddedBroker) -> None:
    bootstrap = shoal_broker.bootstrap_servers
    with WireClient(bootstrap) as warm_up:  # topics, handler caches, lazy imports
        assert warm_up.metadata(["leaks"]).topics[0].error_code == ErrorCode.NONE
        warm_up.send_raw(fetch_parked("leaks", 1)[:-3])
    assert wait_until(lambda: connection_count(shoal_broker), lambda n: n == 0) == 0
    tasks_before = loop_task_count(shoal_broker)
    fds_before = open_fds()

    metadata = request_frame(3, 12, {"topics": [{"name": "leaks"}]}, correlation_id=2)
    partial_sends: list[bytes] = [
        b"",  # connect and leave
        b"\x00\x00",  # half a size prefix
        I32.pack(500) + b"\x00\x03",  # a size prefix and two bytes of the body
        metadata[: len(metadata) // 2],  # half a request
        metadata + metadata[:10],  # a whole request, then part of the next
        fetch_parked("leaks", 3),  # a Fetch parked for 30 s
        fetch_parked("leaks", 4) + fetch_parked("leaks", 5) + metadata,  # queued behind it
    ]
    rounds = 30
    for round_index in range(rounds):
        sockets = []
        for i, data in enumerate(partial_sends):
            sock = socket.create_connection(host_port(bootstrap), IO_TIMEOUT_S)
            if data:
                sock.sendall(data)
            if (round_index + i) % 2:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            sockets.append(sock)
        for sock in sockets:
            sock.close()

    baseline = (0, tasks_before, fds_before)
    now = wait_until(
        lambda: (connection_count(shoal_broker), loop_task_count(shoal_broker), open_fds()),
        lambda state: state == baseline,
    )
    assert now == baseline, "(connections, tasks, fds) after the drops, and before"
    with WireClient(bootstrap) as client:
        assert client.metadata(["leaks"]).topics[0].error_code == ErrorCode.NONE
