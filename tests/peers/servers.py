"""Real Redis, RabbitMQ and NATS JetStream servers on free loopback ports, for tests and benches.

Each server keeps its data, logs and (for RabbitMQ) Erlang cookie and port mapper inside the
``data_dir`` it is given, so several can run side by side, and none touches the system service.
``start()`` returns once the server answers its own protocol; ``stop()`` is graceful (the server
flushes what it persists); ``kill()`` is SIGKILL; ``restart()`` stops and starts again on the same
port and data directory, so what was persisted is there again. Every process is started in its own
session and swept with its whole process group, so a stop leaves nothing behind.

    with start_redis(tmp / "redis") as redis:      # AOF, appendfsync always
        ...redis.url...
    nats = start_nats(tmp / "nats")                # JetStream, file store
    rabbit = start_rabbitmq(tmp / "rabbit")        # private node, no management plugin

Session fixtures ``redis_server``, ``rabbitmq_server`` and ``nats_server`` are defined at the end;
the root tests/conftest.py imports them, so a whole test session shares one server of each.
Run ``make peers`` (scripts/peers/{redis,rabbitmq,nats}.sh) to install the binaries.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Self

import pytest

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
"""Redis and NATS answer within a second; the bound only turns a hang into an error."""
RABBIT_START_TIMEOUT_S = 120.0
"""RabbitMQ boots an Erlang VM, Mnesia and the Ra log for quorum queues: seconds on an idle
machine, much longer on two cores shared with other test runs."""
STOP_TIMEOUT_S = 60.0
"""A graceful stop flushes (Redis AOF, RabbitMQ queues); past this the process is killed."""
PROBE_TIMEOUT_S = 2.0
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
"""The unwrapped scripts: the Debian wrapper in /usr/sbin switches to the rabbitmq user and its
fixed directories, and ignores the RABBITMQ_* variables that make a private node."""


class PeerServerError(RuntimeError):
    """A peer server is missing, would not start or would not stop; the message says why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


PR_SET_PDEATHSIG = 1
try:
    # Resolved here, in the parent: the child of a threaded process must not dlopen after fork.
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: servers simply lack the parent-death signal
    _prctl = None


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGKILL when the parent dies.

    This is what keeps a server from outliving a pytest or bench run that is itself SIGKILLed
    (it reaches the direct child; grandchildren are swept by stop(), through the session of its
    own each server is started in).
    """
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawn(
    command: list[str], log: IO[bytes], env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    if shutil.which(command[0]) is None:
        raise PeerServerError(f"{command[0]} is not installed: run `make peers`")
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def _end(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the server, wait for it, then SIGKILL whatever is left in its group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT_S)
    # Helpers the server forked (Erlang's erl_child_setup, inet_gethost) share its group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class PeerServer:
    """One server process on ``host:port`` with its state in ``data_dir``.

    Subclasses say how to start it (``_command``, ``_environment``) and how to tell that it
    accepts clients (``_probe``).
    """

    name = "server"
    scheme = ""
    start_timeout_s = START_TIMEOUT_S

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.host = HOST
        self.port = port if port is not None else free_port()
        self.data_dir = data_dir
        self.log_path = data_dir / f"{self.name}.log"
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str] | None:
        return None

    def _probe(self) -> bool:
        """True once the server answers a client on its port."""
        raise NotImplementedError

    def start(self) -> Self:
        if self._proc is not None:
            raise PeerServerError(f"{self.name} is already running on port {self.port}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            self._proc = _spawn(self._command(), log, self._environment())
        try:
            self._wait_ready(began)
        except BaseException:
            self.kill()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _wait_ready(self, began: float) -> None:
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise PeerServerError(
                    f"{self.name} exited with {self._proc.returncode}:\n{self.log_text()}"
                )
            with contextlib.suppress(OSError):
                if self._probe():
                    return
            if time.monotonic() - began > self.start_timeout_s:
                raise PeerServerError(
                    f"{self.name} not ready after {self.start_timeout_s}s:\n{self.log_text()}"
                )
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Graceful: SIGTERM, which each of these servers handles by persisting and exiting."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _end(proc, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: no shutdown; only what the server already wrote (and fsynced) survives."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _end(proc, signal.SIGKILL)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, data_dir={str(self.data_dir)!r})"


def _exchange(host: str, port: int, request: bytes, reply_size: int = 4096) -> bytes:
    with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as sock:
        if request:
            sock.sendall(request)
        return sock.recv(reply_size)


class RedisServer(PeerServer):
    name = "redis"
    scheme = "redis"

    def __init__(self, data_dir: Path, appendfsync: str = "always", port: int | None = None):
        if appendfsync not in ("always", "everysec", "no"):
            raise ValueError(f"appendfsync must be always, everysec or no, not {appendfsync!r}")
        super().__init__(data_dir, port)
        self.appendfsync = appendfsync

    def _command(self) -> list[str]:
        return [
            "redis-server",
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            # AOF is the persistence under test; RDB snapshots would only add background forks.
            "--save", "",
            "--daemonize", "no",
            "--logfile", "",
            "--protected-mode", "no",
        ]  # fmt: skip

    def _probe(self) -> bool:
        # While it replays the AOF Redis answers -LOADING; only +PONG means it serves data.
        return _exchange(self.host, self.port, b"PING\r\n").startswith(b"+PONG")


class NatsServer(PeerServer):
    name = "nats"
    scheme = "nats"

    def _command(self) -> list[str]:
        return [
            "nats-server",
            "--addr", self.host,
            "--port", str(self.port),
            # A fixed name: JetStream keys its state by server name, and a restart must find it.
            "--server_name", f"shoal-peer-{self.port}",
            "--jetstream",
            "--store_dir", str(self.data_dir),
        ]  # fmt: skip

    def _probe(self) -> bool:
        # The INFO line a server sends on connect says whether JetStream is up yet.
        info = _exchange(self.host, self.port, b"")
        return info.startswith(b"INFO ") and b'"jetstream":true' in info


AMQP_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
AMQP_FRAME_METHOD = 1


class RabbitServer(PeerServer):
    """A private RabbitMQ node: its own node name, ports, Erlang cookie, port mapper and files."""

    name = "rabbitmq"
    scheme = "amqp"
    start_timeout_s = RABBIT_START_TIMEOUT_S

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port)
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.nodename = f"shoal-peer-{self.port}@localhost"
        self._epmd: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/"

    def _environment(self) -> dict[str, str]:
        home = self.data_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(os.urandom(16).hex())
            cookie.chmod(0o400)  # Erlang refuses a cookie file others can read
        plugins = self.data_dir / "enabled_plugins"
        plugins.write_text("[].\n")  # management and every other plugin off
        env_file = self.data_dir / "rabbitmq-env.conf"
        env_file.touch()  # not /etc/rabbitmq/rabbitmq-env.conf: that is the system node's
        return {
            **os.environ,
            "HOME": str(home),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CONF_ENV_FILE": str(env_file),
            "RABBITMQ_CONFIG_FILE": str(self.data_dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.data_dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.data_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.data_dir / "log"),
            "RABBITMQ_PID_FILE": str(self.data_dir / "rabbitmq.pid"),
            # Erlang distribution listens on loopback only, like the AMQP port.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _command(self) -> list[str]:
        return [str(RABBIT_BIN / "rabbitmq-server")]

    def start(self) -> Self:
        if not (RABBIT_BIN / "rabbitmq-server").exists():
            raise PeerServerError(f"{RABBIT_BIN}/rabbitmq-server is missing: run `make peers`")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "rabbitmq.conf").write_text(
            # The node's own disk alarm would block publishers when a shared /tmp runs low.
            "disk_free_limit.absolute = 50MB\n"
        )
        if self._epmd is None or self._epmd.poll() is not None:
            # A port mapper of our own, on our own port: the node never registers with (or starts)
            # the machine's shared epmd, which would outlive the test.
            with (self.data_dir / "epmd.log").open("ab") as log:
                self._epmd = _spawn(["epmd", "-port", str(self.epmd_port)], log, None)
        try:
            return super().start()
        except BaseException:
            self._stop_epmd()
            raise

    def _probe(self) -> bool:
        # The AMQP listener opens last in the boot sequence; the broker's first frame after the
        # protocol header is a method frame (Connection.Start).
        reply = _exchange(self.host, self.port, AMQP_PROTOCOL_HEADER, 7)
        return len(reply) >= 1 and reply[0] == AMQP_FRAME_METHOD

    def _stop_epmd(self) -> None:
        epmd, self._epmd = self._epmd, None
        if epmd is not None:
            _end(epmd, signal.SIGTERM)

    def stop(self) -> None:
        super().stop()
        self._stop_epmd()

    def kill(self) -> None:
        super().kill()
        self._stop_epmd()

    def restart(self) -> Self:
        # Keep the port mapper: the node re-registers with it under the same name.
        super().stop()
        return self.start()


def start_redis(data_dir: Path, appendfsync: str = "always") -> RedisServer:
    """Redis with the append-only file on, fsynced per ``appendfsync`` (default: every write)."""
    return RedisServer(data_dir, appendfsync).start()


def start_rabbitmq(data_dir: Path) -> RabbitServer:
    """A private RabbitMQ node (user guest/guest, loopback only, no plugins)."""
    return RabbitServer(data_dir).start()


def start_nats(data_dir: Path) -> NatsServer:
    """nats-server with JetStream on and its file store in ``data_dir``."""
    return NatsServer(data_dir).start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with start_redis(tmp_path_factory.mktemp("redis-server")) as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    with start_rabbitmq(tmp_path_factory.mktemp("rabbitmq-server")) as server:
        yield server


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with start_nats(tmp_path_factory.mktemp("nats-server")) as server:
        yield server
