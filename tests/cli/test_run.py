"""``shoal run`` as a real process against a real broker: it consumes, answers its probes and
metrics, stops cleanly on SIGTERM with its offsets committed; and the same with ``--workers``."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from shoal.embedded import EmbeddedBroker
from tests.cli.support import SUBPROCESS_TIMEOUT_S, run_shoal, shoal_script

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PARTITIONS = 3  # the cli tests' broker fixture auto-creates topics with three partitions
WAIT_ROUNDS_MAX = 600
"""Rounds of 0.1 s waiting for a condition: a bound against a hang, not a timing assertion."""

SERVICE = """
import os

from shoal.app import App, Message

app = App(f"kafka://{os.environ['TEST_BOOTSTRAP']}", name="jobs-service")


@app.subscriber("jobs", group="job-workers")
async def handle(job: dict, msg: Message) -> None:
    # One short append per record: whole lines even with two processes writing.
    with open(os.environ["TEST_OUT"], "a") as out:
        out.write(f"{os.getpid()} {msg.partition} {msg.offset} {job['n']}\\n")


@app.on_startup
def refuse_when_asked() -> None:
    if os.environ.get("TEST_FAIL_START"):
        raise RuntimeError("no configuration")
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    name = f"jobs_service_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SERVICE))
    yield f"{name}:app"


def free_ports(count: int) -> int:
    """A port P with P..P+count-1 all free (bound and released; good enough on loopback)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no run of free ports")


def wait_until(condition: object, what: str, process: subprocess.Popen[bytes]) -> None:
    assert callable(condition)
    for _ in range(WAIT_ROUNDS_MAX):
        if condition():
            return
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"shoal run exited ({process.returncode}) before {what}: {err!r}")
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def produce(bootstrap: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for n in range(count):
        producer.produce("jobs", value=b'{"n": %d}' % n, key=b"key-%d" % n)
    assert producer.flush(30) == 0


def handled(out: Path) -> list[tuple[int, int, int, int]]:
    """(pid, partition, offset, n) per handled record."""
    if not out.exists():
        return []
    lines = out.read_text().splitlines()
    return [(int(a), int(b), int(c), int(d)) for a, b, c, d in (line.split() for line in lines)]


def processed_total(port: int) -> float:
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "shoal_messages_processed_total"
    )


def committed(bootstrap: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "job-workers"})
    try:
        tps = consumer.committed(
            [TopicPartition("jobs", p) for p in range(PARTITIONS)], timeout=SUBPROCESS_TIMEOUT_S
        )
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}


def start(
    service: str, tmp_path: Path, broker: EmbeddedBroker, *args: str, fail_start: bool = False
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TEST_BOOTSTRAP": broker.bootstrap_servers,
        "TEST_OUT": str(tmp_path / "handled.txt"),
    }
    if fail_start:
        env["TEST_FAIL_START"] = "1"
    return subprocess.Popen(
        [shoal_script(), "run", service, "--app-dir", str(tmp_path), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def stop(process: subprocess.Popen[bytes]) -> tuple[int, bytes]:
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("shoal run did not stop on SIGTERM") from None
    return process.returncode, err


def check_committed_covers(bootstrap: str, records: list[tuple[int, int, int, int]]) -> None:
    last = {}
    for _, partition, offset, _ in records:
        last[partition] = max(last.get(partition, -1), offset)
    assert committed(bootstrap) == {p: offset + 1 for p, offset in last.items()}


def test_run_consumes_serves_probes_and_stops_on_sigterm(
    service: str, tmp_path: Path, broker: EmbeddedBroker
) -> None:
    port = free_ports(1)
    process = start(service, tmp_path, broker, "--http-port", str(port))
    try:
        wait_until(lambda: ready(port), "/readyz answered 200", process)
        assert httpx.get(f"http://127.0.0.1:{port}/livez", timeout=5).status_code == 200
        produce(broker.bootstrap_servers, 20)
        out = tmp_path / "handled.txt"
        wait_until(lambda: len(handled(out)) >= 20, "20 records handled", process)
        wait_until(lambda: processed_total(port) == 20, "metrics to count 20", process)
    finally:
        code, err = stop(process)
    assert code == 0, err
    assert b"Traceback" not in err
    records = handled(out)
    assert sorted(n for *_, n in records) == list(range(20))
    check_committed_covers(broker.bootstrap_servers, records)


@pytest.mark.slow
def test_two_workers_share_the_partitions(
    service: str, tmp_path: Path, broker: EmbeddedBroker
) -> None:
    port = free_ports(2)
    process = start(service, tmp_path, broker, "--workers", "2", "--http-port", str(port))
    try:
        # Ready means every consumer has partitions: both workers own some of the three.
        wait_until(lambda: ready(port) and ready(port + 1), "both workers ready", process)
        produce(broker.bootstrap_servers, 60)
        out = tmp_path / "handled.txt"
        wait_until(lambda: len(handled(out)) >= 60, "60 records handled", process)
        per_worker = [processed_total(port), processed_total(port + 1)]
    finally:
        code, err = stop(process)
    assert code == 0, err
    records = handled(out)
    assert sorted(n for *_, n in records) == list(range(60))  # each exactly once
    assert len({pid for pid, *_ in records}) == 2
    assert sum(per_worker) == 60 and all(per_worker)
    check_committed_covers(broker.bootstrap_servers, records)


def test_a_failing_worker_fails_the_supervisor(
    service: str, tmp_path: Path, broker: EmbeddedBroker
) -> None:
    process = start(service, tmp_path, broker, "--workers", "2", fail_start=True)
    _, err = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    assert process.returncode == 1
    assert b"RuntimeError: no configuration" in err
    # Whichever worker failed first, the supervisor names it (the other may be stopped by it).
    assert re.search(rb"worker [01] exited with code 1", err), err


def test_single_process_start_failure_is_one_line(
    service: str, tmp_path: Path, broker: EmbeddedBroker
) -> None:
    process = start(service, tmp_path, broker, fail_start=True)
    _, err = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    assert process.returncode == 1
    last = err.decode().strip().splitlines()[-1]
    assert last == "shoal run: jobs-service failed: RuntimeError: no configuration"
    assert "Traceback" not in err.decode()


def test_usage_errors() -> None:
    bad_spec = run_shoal("run", "no-colon")
    assert bad_spec.returncode == 2
    assert b"expected MODULE:ATTR" in bad_spec.stderr
    bad_workers = run_shoal("run", "m:app", "--workers", "0")
    assert bad_workers.returncode == 2


def test_workers_refuse_a_broker_inside_the_process(tmp_path: Path) -> None:
    (tmp_path / "mem_app.py").write_text("from shoal.app import App\napp = App('memory://')\n")
    result = subprocess.run(
        [shoal_script(), "run", "mem_app:app", "--workers", "2", "--app-dir", str(tmp_path)],
        capture_output=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 2
    assert b"memory:// starts one inside each process" in result.stderr
