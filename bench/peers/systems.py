"""Start each system under comparison on loopback in a work directory, and stop it again.

Each entry gives the adapter that drives it and the durability it runs with, stated beside the
figures: the same words appear in the markdown table and the JSON.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Protocol

from bench.peers.common import Latency, PacerReport, Throughput
from tests.peers.kafka_peer import KafkaPeer, free_port, server_jvm_options
from tests.peers.servers import start_nats, start_rabbitmq, start_redis

START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 60.0


class System(Protocol):
    name: str
    kind: str
    url: str
    durability: str
    client: str

    def prepare(self, dest: str) -> None: ...
    def produce(self, dest: str, size: int, seconds: float) -> Throughput: ...
    def consume(self, dest: str, size: int, records: int) -> Throughput: ...
    def latency(
        self, dest: str, rate: int, seconds: float, size: int, warmup_s: float
    ) -> Latency: ...
    def client_alone(self, size: int, records: int) -> dict[str, Any]: ...
    def stop(self) -> None: ...


DURABILITY: Final = {
    "shoal": "flush policy sync (default): acks=all answered after fsync of the batch",
    "kafka": (
        "Apache Kafka 4.4 defaults: acks=all answered from the page cache, no fsync per write "
        f"(JVM `{' '.join(server_jvm_options())}`: kafka-server-start.sh's settings)"
    ),
    "kafka_flush1": (
        "Apache Kafka 4.4, log.flush.interval.messages=1: fsync per append before the ack "
        "(same JVM)"
    ),
    "redis": "AOF on, appendfsync always: XADD answered after the AOF write is fsynced",
    "rabbitmq": "durable quorum queue, persistent messages, publisher confirms (Ra log fsync)",
    "nats": (
        "nats-server 2.9 JetStream file store, acked publishes: written before the ack, fsynced "
        "on a periodic timer (a per-write sync_interval option only exists from 2.10)"
    ),
    "shoal_sasl_ssl": (
        "shoal as above, its client on a SASL_SSL listener: SCRAM-SHA-512 over TLS 1.3"
    ),
    "kafka_sasl_ssl": (
        "Apache Kafka as above, its client on a SASL_SSL listener: SCRAM-SHA-512 over TLS 1.3"
    ),
}
SYSTEMS: Final = list(DURABILITY)


@contextmanager
def shoal_broker(work: Path) -> Iterator[str]:
    """``shoal broker`` as a child process with default settings (flush policy sync)."""
    bootstrap = f"127.0.0.1:{free_port()}"
    with shoal_process(work, ["--kafka-listen", bootstrap]):
        yield bootstrap


@contextmanager
def shoal_process(
    work: Path,
    flags: list[str],
    settings: dict[str, str] | None = None,
    python_args: list[str] | None = None,
) -> Iterator[str]:
    """``shoal broker`` on ``work`` (data in ``work/shoal-data``) with ``flags`` and
    ``SHOAL_*`` ``settings``, until it says it is ready; yields its HTTP base URL; SIGTERM on
    exit. ``python_args`` go to the interpreter before ``-m shoal.cli`` (a profiler's)."""
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "shoal.log"
    http = f"127.0.0.1:{free_port()}"
    command = [
        sys.executable, *(python_args or []), "-m", "shoal.cli", "broker",
        "--data-dir", str(work / "shoal-data"),
        "--http-listen", http,
        *flags,
    ]  # fmt: skip
    # Only the settings asked for: a SHOAL_* variable in the caller's environment must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env.update(settings or {})
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"shoal broker ready" not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"shoal did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.05)
        yield f"http://{http}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_kafka(work: Path, **overrides: str) -> KafkaPeer:
    return KafkaPeer(work, **overrides).start()


@contextmanager
def kafka_broker(work: Path, **overrides: str) -> Iterator[str]:
    peer = start_kafka(work, **overrides)  # started: KafkaPeer.__enter__ would start it again
    try:
        yield peer.bootstrap_servers
    finally:
        peer.stop()


FLUSH_SETTING: Final = "log.flush.interval.messages"
SETTING_SEEN_S_MAX: Final = 30.0
"""How long the broker may take to apply a dynamic setting from its metadata log."""


class KeptKafka:
    """A quick run's one Apache Kafka JVM for the kafka and kafka_flush1 rows: started for the
    first, then given ``log.flush.interval.messages=1`` as a dynamic setting of its one broker
    for the second (the same setting, which every log created after it reads), instead of a second
    JVM start. The quick run checks that the bench works, not speed; a full run starts each
    row's JVM afresh."""

    def __init__(self) -> None:
        self.peer: KafkaPeer | None = None

    def bootstrap(self, work: Path) -> str:
        if self.peer is None:
            self.peer = start_kafka(work)
        return self.peer.bootstrap_servers

    def flush_every_message(self) -> str:
        """Set the flush-per-append default, and wait until the broker says it has it."""
        from confluent_kafka.admin import (  # type: ignore[attr-defined]
            AdminClient,
            AlterConfigOpType,
            ConfigEntry,
            ConfigResource,
            ResourceType,
        )

        assert self.peer is not None, "the kafka row runs first"
        admin = AdminClient({"bootstrap.servers": self.peer.bootstrap_servers, "log_level": 0})
        change = ConfigEntry(FLUSH_SETTING, "1", incremental_operation=AlterConfigOpType.SET)
        node_id = "1"  # KafkaPeer's one node
        broker = ConfigResource(ResourceType.BROKER, node_id, incremental_configs=[change])
        for future in admin.incremental_alter_configs([broker]).values():
            future.result(SETTING_SEEN_S_MAX)
        node = ConfigResource(ResourceType.BROKER, node_id)
        deadline = time.monotonic() + SETTING_SEEN_S_MAX
        while True:
            (future,) = admin.describe_configs([node]).values()
            if future.result(SETTING_SEEN_S_MAX)[FLUSH_SETTING].value == "1":
                return self.peer.bootstrap_servers
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka never applied {FLUSH_SETTING}=1")
            time.sleep(0.1)

    def stop(self) -> None:
        peer, self.peer = self.peer, None
        if peer is not None:
            peer.stop()


@contextmanager
def started(name: str, work: Path, kept: KeptKafka | None = None) -> Iterator[System]:
    """The system called ``name``, running, with its adapter; stopped on exit (the kafka row's
    JVM, when ``kept`` is given, at the end of the kafka_flush1 row instead)."""
    from bench.peers.kafka_protocol import KafkaProtocolSystem
    from bench.peers.nats_jetstream import NatsSystem
    from bench.peers.rabbitmq import RabbitSystem
    from bench.peers.redis_streams import RedisStreamsSystem

    work.mkdir(parents=True, exist_ok=True)
    durability = DURABILITY[name]
    system: System
    if kept is not None and name == "kafka":
        yield KafkaProtocolSystem(name, kept.bootstrap(work / "kafka"), durability)
    elif kept is not None and name == "kafka_flush1" and kept.peer is not None:
        try:
            yield KafkaProtocolSystem(name, kept.flush_every_message(), durability)
        finally:
            kept.stop()
    elif name == "shoal":
        with shoal_broker(work) as bootstrap:
            yield KafkaProtocolSystem(name, bootstrap, durability)
    elif name == "kafka":
        with kafka_broker(work / "kafka") as bootstrap:
            yield KafkaProtocolSystem(name, bootstrap, durability)
    elif name == "kafka_flush1":
        with kafka_broker(work / "kafka", **{"log.flush.interval.messages": "1"}) as bootstrap:
            yield KafkaProtocolSystem(name, bootstrap, durability)
    elif name in ("shoal_sasl_ssl", "kafka_sasl_ssl"):
        from bench.peers.secured import Certificates, kafka_sasl_ssl, shoal_sasl_ssl

        certs = Certificates(work / "certs")
        secured = shoal_sasl_ssl if name == "shoal_sasl_ssl" else kafka_sasl_ssl
        with secured(work / name, certs) as bootstrap:
            yield KafkaProtocolSystem(name, bootstrap, durability, certs.client_config())
    elif name == "redis":
        with start_redis(work / "redis", appendfsync="always") as server:
            system = RedisStreamsSystem(name, server.url, durability)
            try:
                yield system
            finally:
                system.stop()
    elif name == "rabbitmq":
        with start_rabbitmq(work / "rabbitmq") as server:
            yield RabbitSystem(name, server.url, durability)
    elif name == "nats":
        with start_nats(work / "nats") as server:
            yield NatsSystem(name, server.url, durability)
    else:
        raise ValueError(f"unknown system {name!r}; known: {SYSTEMS}")


def pacer_for(kind: str) -> Callable[[str, str, int, float, int], PacerReport]:
    """The paced sender of the ``compare.py pace`` child process, by client kind."""
    if kind == "kafka":
        from bench.peers.kafka_protocol import pace
    elif kind == "redis":
        from bench.peers.redis_streams import pace
    elif kind == "rabbitmq":
        from bench.peers.rabbitmq import pace
    elif kind == "nats":
        from bench.peers.nats_jetstream import pace
    else:
        raise ValueError(f"unknown pacer kind {kind!r}")
    return pace
