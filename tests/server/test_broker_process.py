"""The broker as a child process: acknowledged records survive SIGKILL, and SIGTERM is a clean
stop. Also the check that ``BrokerProcess`` (tests/support/broker.py) works for the suites that
use it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conformance.confluent import all_from, consume, produce
from tests.conformance.records import assert_same_records, dataset
from tests.server.wire import WireClient, request_frame
from tests.support.broker import BrokerProcess

pytestmark = pytest.mark.integration


def test_acknowledged_records_survive_sigkill(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    process = broker_process(num_partitions=3)
    records = dataset(3_000, 3, seed=31)
    with WireClient(process.bootstrap_servers) as client:  # auto-creates it with 3 partitions
        assert client.metadata(["durable"]).topics[0].error_code == 0
    produce(process.bootstrap_servers, "durable", records, acks="all")
    port = process.kafka_port
    process.kill()
    process.start(kafka_port=port)  # clients find the broker where they left it
    got = consume(process.bootstrap_servers, "durable", all_from(3), len(records))
    assert_same_records(records, got)
    assert process.stop() == 0


def test_sigterm_stops_cleanly_and_keeps_everything(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    process = broker_process()
    records = dataset(500, 1, seed=32)
    produce(process.bootstrap_servers, "clean", records, acks="1")
    assert process.stop() == 0
    process.start()
    got = consume(process.bootstrap_servers, "clean", all_from(1), len(records))
    assert_same_records(records, got)


def test_huge_compact_array_count_does_not_kill_the_broker(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    """One 20-byte Metadata v12 request, from any client, before any authentication."""
    process = broker_process()
    # Metadata v12 body: topics (compact array), two booleans, tagged fields.
    header = request_frame(3, 12, {"topics": []})[4:-4]
    forged = header + b"\xff\xff\xff\xff\x0f" + b"\x01\x00\x00"
    with WireClient(process.bootstrap_servers) as client:
        client.send_raw(len(forged).to_bytes(4, "big") + forged)
        assert client.wait_closed() == b""
    try:
        with WireClient(process.bootstrap_servers) as client:
            assert client.api_versions().error_code == 0
    finally:
        assert process.exit_code is None, f"the broker died: {process.log_text()[-300:]}"


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "executed"])
def test_exit_codes_are_reported_and_each_start_is_a_new_process(
    broker_process: Callable[..., BrokerProcess], tmp_path: Path, fork: bool
) -> None:
    """Forked from the zygote (the default) or executed: the exit code of a child that died on
    its own is its signal, a clean stop is 0, and a start that fails reports its exit code and
    leaves its traceback in the log."""
    process = broker_process(fork=fork)
    first = process.pid
    os.kill(first, signal.SIGKILL)  # not through BrokerProcess: it must notice by itself
    deadline = time.monotonic() + 30
    while process.exit_code is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.exit_code == -signal.SIGKILL
    process.kill()  # releases the dead child
    process.start()
    assert process.pid != first
    with WireClient(process.bootstrap_servers) as client:
        assert client.api_versions().error_code == 0
    assert process.stop() == 0

    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    broken = BrokerProcess(not_a_dir, fork=fork)
    with pytest.raises(AssertionError, match="exited with 1 before it was ready"):
        broken.start()
    assert "Traceback" in broken.log_text()


def test_the_fork_server_survives_a_bad_request_and_its_children_die_with_it(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    """A client gone mid-request must not end the fork server (its other children would be
    orphans nobody signals), and a child must not outlive it (it would hold its port)."""
    import socket

    from tests.support.zygote import fork_server

    process = broker_process(num_partitions=1)
    server = fork_server()
    for payload in (b"not json", b""):
        bad = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        bad.connect(server.path)
        if payload:  # the descriptors a request carries, then a message that is no JSON
            read_end, write_end = os.pipe()
            socket.send_fds(bad, [payload], [read_end, write_end])
            os.close(read_end)
            os.close(write_end)
        bad.close()
    time.sleep(0.5)
    assert server.alive, server.log.read_text()[-2000:]
    child, port = process.pid, process.kafka_port
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
        assert time.monotonic() < deadline, f"broker {child} outlived its fork server"
        time.sleep(0.05)
    process.kill()
    process.start(kafka_port=port)  # a new fork server; the port is free again
    assert process.exit_code is None


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"
