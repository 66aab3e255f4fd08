"""A 3-broker Apache Kafka 4.4 KRaft cluster as a test peer: what a team moves to when it
outgrows one ``shoal broker`` (issue 21).

Three combined broker+controller nodes on loopback, each with its own ports and data directory,
formatted with one cluster id and a static three-voter quorum. Topics default to replication
factor 3 with ``min.insync.replicas=2``, so an acks=all write survives the loss of any one
node. ``KafkaCluster(workdir).start()`` starts the three JVMs in parallel (each JVM's start-up is
mostly single-threaded class loading, so the wall time is about one node's) and waits until a
client sees all three brokers; ``kill(node)`` SIGKILLs one node (no clean shutdown, no leader
hand-off), ``restart(node)`` starts it again on its data directory, and ``stop()`` ends all.

The jars are those ``scripts/peers/kafka.sh`` caches (the single-node peer's, tests/peers/
kafka_peer.py); the heap is small because the CI machine has 2 cores and shares them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, Self

from confluent_kafka.admin import AdminClient

from tests.peers.kafka_peer import (
    JVM_PERFORMANCE_OPTS,
    KafkaPeerError,
    classpath,
    free_port,
    java_command,
    random_cluster_id,
)

NODES: Final = 3
REPLICATION_FACTOR: Final = 3
MIN_INSYNC_REPLICAS: Final = 2
NODE_HEAP_OPTS: Final = "-Xmx384m -Xms128m"
"""Per node: three of Kafka's default 1 GiB heaps would not fit beside the other test jobs."""
NODE_JIT_OPTS: Final = "-XX:TieredStopAtLevel=1"
"""The client compiler only: the tests' workloads are small, and C2's compiler threads would
compete with three JVMs' start-up for the machine's 2 cores (starts about a third faster)."""
START_TIMEOUT_S: Final = 120.0
"""Three JVMs starting at once on 2 shared cores take several times one alone."""
STOP_TIMEOUT_S: Final = 20.0
POLL_INTERVAL_S: Final = 0.25

# Failure detection shortened from Kafka's defaults (broker session 9 s, replica lag 30 s) so a
# killed node leaves the ISR, and its partitions get new leaders, in seconds: with the defaults
# an acks=all write to a partition whose dead follower is still in the ISR waits up to 30 s.
FAILURE_DETECTION: Final = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "replica.lag.time.max.ms": "4000",
}


class KafkaNode:
    """One combined broker+controller node of the cluster."""

    def __init__(self, node_id: int, workdir: Path) -> None:
        self.node_id = node_id
        self.workdir = workdir
        self.port = free_port()
        self.controller_port = free_port()
        self.config = workdir / "server.properties"
        self.log_path = workdir / "kafka.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def properties(self, voters: str, overrides: dict[str, str]) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "3",
            "default.replication.factor": str(REPLICATION_FACTOR),
            "min.insync.replicas": str(MIN_INSYNC_REPLICAS),
            "offsets.topic.replication.factor": str(REPLICATION_FACTOR),
            # Fewer than Kafka's 50: each partition is three replicas to create and elect.
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": str(REPLICATION_FACTOR),
            "transaction.state.log.min.isr": str(MIN_INSYNC_REPLICAS),
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": str(REPLICATION_FACTOR),
            "share.coordinator.state.topic.min.isr": str(MIN_INSYNC_REPLICAS),
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            **FAILURE_DETECTION,
            **overrides,
        }
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def command(self) -> list[str]:
        heap = os.environ.get("SHOAL_KAFKA_CLUSTER_HEAP_OPTS") or NODE_HEAP_OPTS
        return [
            "java",
            *heap.split(),
            *JVM_PERFORMANCE_OPTS.split(),
            NODE_JIT_OPTS,
            "-cp",
            classpath(),
            "kafka.Kafka",
            str(self.config),
        ]

    def launch(self) -> None:
        with self.log_path.open("ab") as log:  # appended: a restart keeps the earlier run's log
            self._proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def kill(self) -> None:
        """SIGKILL: what a power cut or the OOM killer does; nothing is flushed or handed off."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT_S)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


class KafkaCluster:
    def __init__(self, workdir: Path, **overrides: str) -> None:
        self.workdir = workdir
        self.nodes = [KafkaNode(i, workdir / f"node-{i}") for i in range(1, NODES + 1)]
        self.overrides = overrides
        self.kills = 0

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    def start(self) -> Self:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        cluster_id = random_cluster_id()
        for node in self.nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
            node.config.write_text(node.properties(voters, self.overrides))
        try:
            with ThreadPoolExecutor(NODES) as pool:
                for node, fmt in zip(
                    self.nodes,
                    pool.map(lambda n: _format(n.config, cluster_id), self.nodes),
                    strict=True,
                ):
                    if fmt.returncode != 0:
                        raise KafkaPeerError(
                            f"kafka-storage format of node {node.node_id} failed:\n"
                            f"{fmt.stdout}\n{fmt.stderr}"
                        )
            for node in self.nodes:
                node.launch()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, node_id: int) -> None:
        self.node(node_id).kill()
        self.kills += 1

    def restart(self, node_id: int) -> None:
        """Start a killed node on its data directory (recovery of its logs, then catch-up)."""
        node = self.node(node_id)
        if node.alive():
            raise KafkaPeerError(f"node {node_id} is running: kill it first")
        node.launch()

    def live_brokers(self) -> set[int]:
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception:
            return set()
        return set(metadata.brokers)

    def under_replicated(self) -> list[str]:
        """Partitions whose ISR is not every replica: until none is, a second kill could lose
        acks=all writes (or stop them, below min.insync.replicas)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        metadata = admin.list_topics(timeout=5)
        return [
            f"{topic.topic}[{p.id}] isr={p.isrs} replicas={p.replicas}"
            for topic in metadata.topics.values()
            for p in topic.partitions.values()
            if sorted(p.isrs) != sorted(p.replicas)
        ]

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Every node running, seen as a broker, and every partition fully replicated."""
        deadline = time.monotonic() + timeout_s
        while True:
            for node in self.nodes:
                if node._proc is not None and not node.alive():
                    raise KafkaPeerError(
                        f"Kafka node {node.node_id} exited with {node.exit_code()}:\n"
                        f"{node.log_text()}"
                    )
            try:
                if self.live_brokers() == {n.node_id for n in self.nodes} and not (
                    self.under_replicated()
                ):
                    return
            except Exception:
                pass  # not reachable yet: poll again
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- node {n.node_id}\n{n.log_text()}" for n in self.nodes)
                raise KafkaPeerError(
                    f"the Kafka cluster is not healthy after {timeout_s}s:\n{logs}"
                )
            time.sleep(POLL_INTERVAL_S)

    def stop(self) -> None:
        # SIGKILL, not SIGTERM: the data is thrown away, and a clean shutdown of the last node
        # waits about 20 s for a controller quorum that the other two took with them.
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _format(config: Path, cluster_id: str) -> subprocess.CompletedProcess[str]:
    """``kafka-storage format`` of one node with the cluster's shared id (the single-node
    peer's ``format_storage`` draws a new id for each call)."""
    return subprocess.run(
        java_command(
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(config),
            # One argument: an id may begin with "-", which a separate option would misread.
            f"--cluster-id={cluster_id}",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
