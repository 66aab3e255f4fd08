"""The advertised listener between two machines, made of two network namespaces.

The test creates namespaces ``broker`` and ``client`` joined by a veth pair, with addresses
only inside them (BROKER_ADDRESS, CLIENT_ADDRESS), so no traffic leaves them; they are removed
at the end. ``shoal broker`` runs in the first, bound to 0.0.0.0; a confluent-kafka client in
the second can reach the broker only at BROKER_ADDRESS:

- with ``--advertised-listener BROKER_ADDRESS:PORT`` it produces and consumes;
- told 127.0.0.1 (what shoal used to advertise for a wildcard bind) it bootstraps, then cannot
  deliver a single record: 127.0.0.1 is its own machine;
- with no advertised listener, the broker refuses to start and says why (as Kafka refuses to
  advertise 0.0.0.0).

Needs root and iproute2's ``ip``; without them the test fails, it does not skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

BROKER_ADDRESS: Final = "10.231.0.1"
CLIENT_ADDRESS: Final = "10.231.0.2"
PREFIX_LENGTH: Final = 30
"""A /30 holds exactly the two ends of the veth pair."""
KAFKA_PORT: Final = 9092
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
CLIENT_TIMEOUT_S: Final = 120.0
CLIENT_SCRIPT: Final = Path(__file__).with_name("netns_client.py")
BIN: Final = Path(sys.executable).parent


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


@dataclass(frozen=True)
class Namespaces:
    broker: str
    client: str

    def run(self, namespace: str, *command: str) -> list[str]:
        return ["ip", "netns", "exec", namespace, *command]


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    if shutil.which("ip") is None:
        pytest.fail("this test needs iproute2's `ip` command (apt-get install iproute2)")
    if os.geteuid() != 0:
        pytest.fail("this test creates network namespaces and needs to run as root")
    tag = str(os.getpid())
    spaces = Namespaces(broker=f"shoal-broker-{tag}", client=f"shoal-client-{tag}")
    broker_end, client_end = f"vb{tag}", f"vc{tag}"  # interface names: at most 15 characters
    created: list[str] = []
    try:
        for name in (spaces.broker, spaces.client):
            ip("netns", "add", name)
            created.append(name)
        # Created inside the broker namespace with its peer in the client one: the pair never
        # exists in the host's namespace.
        ip("-n", spaces.broker, "link", "add", broker_end, "type", "veth", "peer", "name",
           client_end, "netns", spaces.client)  # fmt: skip
        for name, end, address in (
            (spaces.broker, broker_end, BROKER_ADDRESS),
            (spaces.client, client_end, CLIENT_ADDRESS),
        ):
            ip("-n", name, "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", end)
            ip("-n", name, "link", "set", end, "up")
            ip("-n", name, "link", "set", "lo", "up")
        yield spaces
    finally:
        for name in reversed(created):
            ip("netns", "delete", name)  # takes the veth pair with it


@dataclass
class BrokerInNamespace:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "shoal broker ready" not in self.log_text():
            if self.process.poll() is not None:
                raise AssertionError(f"the broker exited early:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the broker did not become ready:\n{self.log_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)


def start_broker(spaces: Namespaces, tmp_path: Path, *flags: str) -> BrokerInNamespace:
    log_path = tmp_path / "broker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            spaces.run(
                spaces.broker,
                str(BIN / "shoal"),
                "broker",
                "--data-dir",
                str(tmp_path / "data"),
                "--kafka-listen",
                f"0.0.0.0:{KAFKA_PORT}",
                "--http-listen",
                "127.0.0.1:8080",
                # Plaintext beyond this machine: the tests' own network namespaces.
                "--allow-insecure",
                *flags,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return BrokerInNamespace(process, log_path)


def run_client(spaces: Namespaces, mode: str, topic: str) -> dict[str, Any]:
    result = subprocess.run(
        spaces.run(
            spaces.client,
            sys.executable,
            str(CLIENT_SCRIPT),
            mode,
            f"{BROKER_ADDRESS}:{KAFKA_PORT}",
            topic,
        ),
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return answer


def test_a_client_on_another_machine_produces_and_consumes(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    broker = start_broker(
        namespaces, tmp_path, "--advertised-listener", f"{BROKER_ADDRESS}:{KAFKA_PORT}"
    )
    try:
        broker.wait_ready()
        result = run_client(namespaces, "roundtrip", "across")
    finally:
        broker.stop()
    assert result["brokers"] == [[1, BROKER_ADDRESS, KAFKA_PORT]]
    assert result["delivered"] == list(range(10))
    assert result["consumed"] == [f"record-{i}" for i in range(10)]
    assert broker.process.returncode == 0, broker.log_text()


def test_told_127_0_0_1_the_client_bootstraps_but_cannot_produce(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    broker = start_broker(namespaces, tmp_path, "--advertised-listener", f"127.0.0.1:{KAFKA_PORT}")
    try:
        broker.wait_ready()
        result = run_client(namespaces, "produce", "stranded")
    finally:
        broker.stop()
    # Bootstrap worked (the broker answered Metadata at the address the client was given)...
    assert result["brokers"] == [[1, "127.0.0.1", KAFKA_PORT]]
    # ...but the address it was told leads back to its own machine.
    assert result["delivered"] == ["_MSG_TIMED_OUT"]


def test_a_wildcard_bind_without_an_advertised_listener_is_refused(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    broker = start_broker(namespaces, tmp_path)
    try:
        code = broker.process.wait(START_TIMEOUT_S)
    finally:
        broker.stop()
    assert code == 2
    message = broker.log_text()
    assert "binds every interface" in message
    assert "--advertised-listener" in message
    assert not (tmp_path / "data").exists()
