"""Fixtures shared by every test package: a real shoal broker, in-process or as a child process.

``shoal_broker``: a started :class:`~shoal.embedded.EmbeddedBroker` on ``tmp_path`` with default
settings. ``shoal_broker_factory(**settings)``: the same with settings of the test's choosing
(``num_partitions``, ``message_max_bytes``, ``flush_policy``...); every broker it starts is
stopped at teardown.

``broker_process`` / :class:`BrokerProcess`: the broker in a child process, for tests that
SIGKILL it, and for fuzzing (a crash takes down the child, not pytest). The child is
``tests/support/broker_child.py``, which prints one JSON line with the bound ports once the
broker is ready; its log (stderr) goes to a file the test can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest

from shoal.embedded import EmbeddedBroker
from tests.peers.kafka_peer import KafkaPeer
from tests.peers.servers import nats_server, rabbitmq_server, redis_server

T = TypeVar("T")

CHILD: Final = Path(__file__).parent / "support" / "broker_child.py"
PROCESS_START_TIMEOUT_S: Final = 60.0
"""Start-up includes log recovery of whatever the test left in the directory; a hung start
still fails the test instead of hanging it."""
PROCESS_STOP_TIMEOUT_S: Final = 30.0


def run_on_loop(broker: EmbeddedBroker, fn: Callable[[], T]) -> T:
    """Call ``fn`` on the embedded broker's event loop thread and return its result.

    The broker's objects (connections, logs, topic store) belong to that thread; tests that
    inspect them, or count the loop's tasks, must do it there. EmbeddedBroker has no public
    accessor for its loop yet, hence the private attribute, in this one place.
    """
    loop: asyncio.AbstractEventLoop | None = broker._loop
    assert loop is not None, "the embedded broker is not running"
    result: Future[T] = Future()

    def call() -> None:
        try:
            result.set_result(fn())
        except BaseException as exc:
            result.set_exception(exc)

    loop.call_soon_threadsafe(call)
    return result.result(timeout=30)


def loop_task_count(broker: EmbeddedBroker) -> int:
    """Tasks alive on the broker's loop (connections, handlers, HTTP server, retention)."""
    return run_on_loop(broker, lambda: len(asyncio.all_tasks()))


def create_topic(broker: EmbeddedBroker, name: str, partitions: int) -> None:
    """Create a topic directly in the broker (no CreateTopics API is needed)."""

    def create() -> None:
        inner = broker.app.broker
        assert inner is not None, "the embedded broker is not started"
        inner.create_topic(name, partitions)

    run_on_loop(broker, create)


@pytest.fixture
def shoal_broker_factory(tmp_path: Path) -> Iterator[Callable[..., EmbeddedBroker]]:
    started: list[EmbeddedBroker] = []

    def start(**settings: Any) -> EmbeddedBroker:
        data_dir = tmp_path / f"shoal-{len(started)}"
        broker = EmbeddedBroker(str(data_dir), **settings).start()
        started.append(broker)
        return broker

    yield start
    for broker in reversed(started):
        broker.stop()


@pytest.fixture
def shoal_broker(shoal_broker_factory: Callable[..., EmbeddedBroker]) -> EmbeddedBroker:
    return shoal_broker_factory()


class BrokerProcess:
    """The broker in a child process on ``data_dir``; restartable, and killable with SIGKILL.

    Each start binds new ports (port 0) unless ``kafka_port`` is given, which a restart after a
    kill needs when clients must find the broker where they left it. ``broker_config`` replaces
    fields of the running broker's BrokerConfig (limits that are not settings); the other
    keyword arguments are :class:`~shoal.server.settings.Settings` fields.
    """

    def __init__(
        self, data_dir: Path, *, broker_config: dict[str, Any] | None = None, **settings: Any
    ) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.broker_config = broker_config or {}
        self.log_path = data_dir.with_name(data_dir.name + ".log")
        self.process: subprocess.Popen[str] | None = None
        self.kafka_port = 0
        self.http_port = 0

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, *, kafka_port: int = 0) -> BrokerProcess:
        assert self.process is None, "already running"
        config = {
            "settings": {
                **self.settings,
                "data_dir": str(self.data_dir),
                "kafka_listen": f"127.0.0.1:{kafka_port}",
                "http_listen": "127.0.0.1:0",
            },
            "broker_config": self.broker_config,
        }
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(CHILD), json.dumps(config)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=Path(__file__).parent.parent,
            )
        ready = self._read_ready_line()
        self.kafka_port = int(ready["kafka_port"])
        self.http_port = int(ready["http_port"])
        return self

    def _read_ready_line(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        result: Future[str] = Future()
        stdout = self.process.stdout

        def read() -> None:
            result.set_result(stdout.readline())

        threading.Thread(target=read, daemon=True).start()
        try:
            line = result.result(timeout=PROCESS_START_TIMEOUT_S)
        except TimeoutError:
            self.kill()
            raise AssertionError("the broker process did not become ready") from None
        if not line:
            code = self.process.wait(PROCESS_STOP_TIMEOUT_S)
            self.process = None
            raise AssertionError(f"the broker process exited with {code} before it was ready")
        return dict(json.loads(line))

    @property
    def exit_code(self) -> int | None:
        """None while the child runs; its exit code (negative: the signal) once it has died."""
        return None if self.process is None else self.process.poll()

    def log_text(self) -> str:
        """Everything the child wrote to stderr (its log, and any crash report), all starts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what the OS page cache holds survives."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(PROCESS_STOP_TIMEOUT_S)
        self._release()

    def stop(self) -> int:
        """SIGTERM and wait for a clean shutdown; return the exit code."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(PROCESS_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the broker process did not stop on SIGTERM") from None
        self._release()
        return code

    def _release(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    """A factory: ``broker_process(**settings)`` gives a started :class:`BrokerProcess`."""
    started: list[BrokerProcess] = []

    def start(**settings: Any) -> BrokerProcess:
        process = BrokerProcess(tmp_path / f"shoal-process-{len(started)}", **settings)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


# -- peers: one instance of each per test session ---------------------------------------------
# Defined here, at the root, so every test package shares the same server; a package that
# imported these into its own conftest would get a second, separate instance.


@pytest.fixture(scope="session")
def kafka_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaPeer]:
    """One Apache Kafka broker (KRaft, loopback) for the whole session."""
    with KafkaPeer(tmp_path_factory.mktemp("kafka-peer")) as peer:
        yield peer


__all__ = ["kafka_peer", "nats_server", "rabbitmq_server", "redis_server"]
