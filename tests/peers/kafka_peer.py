"""Apache Kafka as a reference peer: a single-node KRaft broker started from the jars that
``scripts/peers/kafka.sh`` caches, on free loopback ports, in a temporary directory.

``KafkaPeer(workdir).start()`` formats storage with a random cluster id, starts ``kafka.Kafka``,
waits until a confluent-kafka AdminClient lists topics, and ``stop()`` sends SIGTERM, then SIGKILL,
and removes the directory. ``kafka_tool(main_class, *args)`` runs a Kafka CLI tool the same way.

The broker's JVM runs with the settings Kafka's own start scripts give it, so that the peer's
latency and throughput are those a user of ``bin/kafka-server-start.sh`` gets (the differential
tests and the benchmarks share this peer): see ``server_jvm_options``. CLI tools start with
quick-start settings instead (``tool_jvm_options``): they are timed by nobody.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Final, Self

from confluent_kafka.admin import AdminClient

KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.4.0")
KAFKA_HOME = Path(
    os.environ.get("SHOAL_KAFKA_HOME", Path.home() / ".cache" / "shoal" / f"kafka-{KAFKA_VERSION}")
)
LIBS = KAFKA_HOME / "libs"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


class KafkaPeerError(RuntimeError):
    """The Kafka peer is missing, or would not start; the message says why (with its log)."""


def classpath() -> str:
    if not (KAFKA_HOME / ".complete").exists():
        raise KafkaPeerError(
            f"Apache Kafka jars are not in {LIBS}: run `make peers` (scripts/peers/kafka.sh)"
        )
    return f"{LIBS}/*"


# The JVM settings of Apache Kafka's start scripts (bin/ of the 4.x distribution).
# kafka-server-start.sh sets the broker's heap when KAFKA_HEAP_OPTS is unset:
SERVER_HEAP_OPTS: Final = "-Xmx1G -Xms1G"
# kafka-run-class.sh, which every script ends in, sets a tool's heap (kafka-storage, kafka-topics,
# the perf tests) when KAFKA_HEAP_OPTS is unset, and the garbage collector for all of them when
# KAFKA_JVM_PERFORMANCE_OPTS is unset. MaxInlineLevel=15 is JDK 14+'s own default; the script
# still passes it for older JDKs, and so do we, to run exactly what the script runs.
TOOL_HEAP_OPTS: Final = "-Xmx256M"
JVM_PERFORMANCE_OPTS: Final = (
    "-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 "
    "-XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true"
)
# Left out, as they cost next to nothing: the scripts' GC log file (-loggc), JMX and log4j2
# configuration (without one, log4j2 logs only errors, to the console: less work than Kafka's
# default INFO log files, so if anything this flatters the peer).


def _jvm_options(default_heap: str) -> list[str]:
    """As the scripts: KAFKA_HEAP_OPTS and KAFKA_JVM_PERFORMANCE_OPTS replace the defaults."""
    heap = os.environ.get("KAFKA_HEAP_OPTS") or default_heap
    performance = os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS") or JVM_PERFORMANCE_OPTS
    return [*heap.split(), *performance.split()]


def server_jvm_options() -> list[str]:
    """The broker's JVM options: kafka-server-start.sh's (a 1 GiB heap, G1)."""
    return _jvm_options(SERVER_HEAP_OPTS)


TOOL_QUICK_START_OPTS: Final = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto"
"""Not the script's: a tool JVM in a test lives a few seconds, most of them start-up, and on 2
shared cores C1 alone and the serial collector halve that (the tests assert what the tools do,
never how fast; the broker keeps the script's settings)."""


CDS_DIR: Final = Path(os.environ.get("SHOAL_CDS_DIR", Path.home() / ".cache" / "shoal" / "cds"))
QUIET_CDS: Final = "-Xlog:cds*=off"
"""The JVM logs a stale or foreign archive to stdout, which tests parse: it is then simply not
used, and says nothing."""


def tool_archive() -> Path:
    """The class data sharing archive of tool JVMs: the classes the first tool of a session
    loaded, dumped when it exited, mapped by every later tool instead of parsed from the jars
    again (about a third of a tool's start-up). Named after the JDK and the jars it was made
    from, so a new JDK or Kafka makes a new one."""
    java = Path(shutil.which("java") or "java").resolve()
    stamp = f"{java}:{java.stat().st_mtime_ns if java.exists() else 0}:{LIBS.stat().st_mtime_ns}"
    digest = uuid.uuid5(uuid.NAMESPACE_URL, stamp).hex[:12]
    return CDS_DIR / f"kafka-{KAFKA_VERSION}-tools-{digest}.jsa"


def tool_jvm_options() -> list[str]:
    """A CLI tool's JVM options: kafka-run-class.sh's 256 MiB heap, started quickly (above)."""
    heap = os.environ.get("KAFKA_HEAP_OPTS") or TOOL_HEAP_OPTS
    performance = os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS") or TOOL_QUICK_START_OPTS
    archive = tool_archive() if LIBS.exists() else None
    sharing = []
    if archive is not None and archive.exists():
        sharing = [f"-XX:SharedArchiveFile={archive}", QUIET_CDS]
    return [*heap.split(), *performance.split(), *sharing]


def java_command(main_class: str, *args: str, server: bool = False) -> list[str]:
    options = server_jvm_options() if server else tool_jvm_options()
    return ["java", *options, "-cp", classpath(), main_class, *args]


def kafka_tool(
    main_class: str, *args: str, timeout: float = 120.0, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Kafka CLI tool (e.g. ``org.apache.kafka.tools.TopicCommand``) to completion.

    The first tool run without a class data sharing archive writes one (``tool_archive``): to
    a name of its own, renamed into place whole, so concurrent runs never map a partial one."""
    command = java_command(main_class, *args)
    archive = tool_archive()
    dumped = archive.with_name(f"{archive.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
    if not archive.exists():
        try:
            archive.parent.mkdir(parents=True, exist_ok=True)
            command[1:1] = [f"-XX:ArchiveClassesAtExit={dumped}", QUIET_CDS]
        except OSError:
            pass  # no cache directory: the tool runs without an archive, only slower
    try:
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        dumped.unlink(missing_ok=True)  # killed, perhaps mid-dump: never put in place
        raise
    if dumped.exists():
        os.replace(dumped, archive)  # the JVM exited on its own: the archive is whole
    return result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def random_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaPeer:
    def __init__(self, workdir: Path, **overrides: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.controller_port = free_port()
        self.overrides = overrides
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path = workdir / "kafka.log"
        self.startup_seconds = 0.0

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            **self.overrides,
        }
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "server.properties"
        config.write_text(self._properties())
        began = time.monotonic()
        fmt = format_storage(config)
        if fmt.returncode != 0:
            raise KafkaPeerError(f"kafka-storage format failed:\n{fmt.stdout}\n{fmt.stderr}")
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                java_command("kafka.Kafka", str(config), server=True),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(began)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _wait_ready(self, began: float) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise KafkaPeerError(
                    f"Kafka exited with {self._proc.returncode}:\n{self.log_text()}"
                )
            try:
                admin.list_topics(timeout=2)
                return
            except Exception:
                if time.monotonic() - began > START_TIMEOUT_S:
                    raise KafkaPeerError(
                        f"Kafka not ready after {START_TIMEOUT_S}s:\n{self.log_text()}"
                    ) from None
                time.sleep(0.2)

    def log_text(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def format_storage(config: Path) -> subprocess.CompletedProcess[str]:
    """``kafka-storage format`` of the node ``config`` describes, with a new cluster id; the
    caller reads the outcome (the format refuses some configs, which a test may want)."""
    return subprocess.run(
        java_command(
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(config),
            # One argument: an id may begin with "-", which a separate argument would turn
            # into an option (kafka-storage then fails, about one start in ten).
            f"--cluster-id={random_cluster_id()}",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
