"""Kafka's own JVM applications (Kafka Streams, Kafka Connect) run as child processes against
a broker, for the compaction must-shows of issue 15.

The jars come from ``scripts/peers/kafka_apps.sh`` (Streams, the connect-mirror plugin) and
``scripts/peers/kafka.sh`` (connect-runtime, which kafka-tools depends on). :class:`JvmApp`
starts one JVM, collects its output on a thread, waits for a line, and SIGKILLs or stops it.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Final, Self

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from tests.peers.kafka_peer import KAFKA_HOME, LIBS, KafkaPeerError

APPS_HOME: Final = Path(
    os.environ.get("SHOAL_KAFKA_APPS_HOME", Path.home() / ".cache" / "shoal" / "kafka-apps")
)
STREAMS_LIBS: Final = APPS_HOME / "streams"
CONNECT_PLUGINS: Final = APPS_HOME / "connect-plugins"
JAVA_SOURCES: Final = Path(__file__).parent / "java"

APP_JVM_OPTIONS: Final = ["-Xmx256M", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
"""Small and quick to start: these JVMs run a few hundred records, not a benchmark (C1 only
and the serial collector save seconds of start-up on 2 shared cores)."""
STOP_TIMEOUT_S: Final = 20.0


def _require(path: Path, script: str) -> Path:
    if not path.exists():
        raise KafkaPeerError(f"{path} is missing: run `make peers` (scripts/peers/{script})")
    return path


def streams_classpath() -> str:
    return f"{_require(STREAMS_LIBS / 'kafka-streams-4.4.0.jar', 'kafka_apps.sh').parent}/*"


def connect_classpath() -> str:
    _require(KAFKA_HOME / ".complete", "kafka.sh")
    return f"{LIBS}/*"


def connect_plugin_path() -> str:
    return str(_require(CONNECT_PLUGINS / "connect-mirror", "kafka_apps.sh").parent)


def compile_java(source: str, classpath: str, out_dir: Path) -> str:
    """Compile ``tests/peers/java/<source>`` with the JDK's javac into ``out_dir``; returns a
    classpath holding the result and ``classpath``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["javac", "-d", str(out_dir), "-cp", classpath, str(JAVA_SOURCES / source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"javac {source} failed:\n{done.stderr}")
    return f"{out_dir}{os.pathsep}{classpath}"


class JvmApp:
    """One JVM running ``main_class``; its stdout and stderr lines are kept in :attr:`lines`."""

    def __init__(
        self,
        classpath: str,
        main_class: str,
        *args: str,
        log_path: Path,
        jvm_options: tuple[str, ...] = (),
    ) -> None:
        self._command = [
            "java",
            *APP_JVM_OPTIONS,
            *jvm_options,
            "-cp",
            classpath,
            main_class,
            *args,
        ]
        self._log_path = log_path
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self._process: subprocess.Popen[str] | None = None
        self._pump_thread: threading.Thread | None = None

    def start(self) -> Self:
        self._process = subprocess.Popen(
            self._command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self._pump_thread = threading.Thread(target=self._pump, args=(self._process,), daemon=True)
        self._pump_thread.start()
        return self

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with self._log_path.open("a") as log:
            for line in process.stdout:
                log.write(line)
                self.lines.append(line.rstrip("\n"))
                self._new.put(line)

    def wait_for(self, needle: str, timeout_s: float) -> None:
        """Wait until a line holding ``needle`` appears (since start); fail with the log tail."""
        deadline = time.monotonic() + timeout_s
        while not any(needle in line for line in self.lines):
            if self._process is not None and self._process.poll() is not None:
                raise AssertionError(f"the JVM exited before {needle!r}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} within {timeout_s} s:\n{self.tail()}")
            try:
                self._new.get(timeout=0.2)
            except queue.Empty:
                pass

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def tail(self, count: int = 40) -> str:
        return "\n".join(self.lines[-count:])

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no final commit, no flush."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(STOP_TIMEOUT_S)
        self._close_output()

    def _close_output(self) -> None:
        # The pump ends at the pipe's end of file once the JVM is gone; then close our end.
        if self._pump_thread is not None:
            self._pump_thread.join(STOP_TIMEOUT_S)
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()

    def stop(self) -> None:
        """SIGTERM (the JVM's shutdown hooks run), then SIGKILL if it does not exit."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_TIMEOUT_S)
        self._close_output()


def connect_worker_properties(bootstrap: str, rest_port: int, group_id: str) -> str:
    """A distributed-mode Connect worker on ``bootstrap``, its three internal topics compacted
    on the broker, the connect-mirror plugin on its plugin path."""
    settings = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "listeners": f"http://127.0.0.1:{rest_port}",
        "plugin.path": connect_plugin_path(),
        "key.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
        "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
        "config.storage.topic": f"{group_id}-configs",
        "offset.storage.topic": f"{group_id}-offsets",
        "status.storage.topic": f"{group_id}-status",
        "config.storage.replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "offset.storage.partitions": "1",
        "status.storage.partitions": "1",
        # Commit source offsets often, so the test can wait for them before the SIGKILL.
        "offset.flush.interval.ms": "500",
        # A SIGKILLed worker's member leaves at its session timeout (the broker's minimum), and
        # its connectors and tasks are reassigned at once, not after the default 5 minutes.
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "1000",
        "scheduled.rebalance.max.delay.ms": "0",
    }
    # Topic settings for the internal topics, given as Connect takes them (KIP-605: any topic
    # config after the topic's prefix; Connect itself forces cleanup.policy=compact): segments
    # that roll fast and a low dirty ratio, so shoal's cleaner compacts them during a test.
    for prefix in ("config.storage.", "offset.storage.", "status.storage."):
        settings[f"{prefix}segment.ms"] = "100"
        settings[f"{prefix}min.cleanable.dirty.ratio"] = "0.01"
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def mirror_maker_classpath() -> str:
    """Dedicated MirrorMaker 2 (``connect-mirror-maker.sh``): Kafka's libs, then the
    connect-mirror jars and, last, the kafka-clients they were built with, which the JVM only
    reaches for classes Kafka 4.4's own jars lack (see scripts/peers/kafka_apps.sh)."""
    plugin = Path(connect_plugin_path()) / "connect-mirror"
    jars = sorted(plugin.glob("connect-mirror*.jar")) + sorted(plugin.glob("kafka-clients-*.jar"))
    return os.pathsep.join([connect_classpath(), *map(str, jars)])


def read_partition(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[Message]:
    """Every record of partition 0 of ``topic`` from its log start to its end as of the call."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}"})
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        seen: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while (not seen or seen[-1].offset() < high - 1) and high > 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"read {len(seen)} records of {topic} (end {high})")
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                seen.append(message)
        return seen
    finally:
        consumer.close()


def log_end_offset(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()
