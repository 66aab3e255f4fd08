"""A fork server ("zygote") for broker child processes: restarts in a tenth of a second.

Starting ``python broker_child.py`` costs 1.5-1.9 s, nearly all of it importing shoal; a SIGKILL
costs 0.02 s. So one process per test session (``python -m tests.support.zygote SOCKET``)
imports the broker once and forks a fresh broker child for each ``BrokerProcess.start``. The
fork happens with no thread in the zygote (checked before every fork) and no event loop (it
never starts one): the child starts its own, as an executed child would. A child dies with the
zygote (PR_SET_PDEATHSIG), and one client's bad request does not end the zygote.

Protocol, over a Unix SOCK_SEQPACKET socket, one connection per child:

    client -> zygote   {"config": the child's config, "env": the test's environment}, with
                       two descriptors: the write end of the child's stdout pipe (its ready
                       line) and its log file (its stderr)
    zygote -> client   {"pid": N}
    client -> zygote   b"KILL" or b"TERM": signal the child (the zygote sends it only while the
                       child is unreaped, so a recycled pid is never hit)
    zygote -> client   {"exit_code": C} once the zygote has reaped the child (negative: the
                       signal, as subprocess reports it); then it closes the connection

A client that closes its connection while its child runs gets the child SIGKILLed; when the
test session ends (the zygote's stdin reaches EOF) every child is SIGKILLed and the zygote
exits. The client side is :class:`ForkServer` and :class:`ForkedChild`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import IO, Any, Final

REPO: Final = Path(__file__).resolve().parents[2]
REQUEST_BYTES_MAX: Final = 1 << 20
"""A child's config (settings and broker config as JSON): a few KiB; a MiB is far above."""
DESCRIPTORS_PER_CHILD: Final = 2
PR_SET_PDEATHSIG: Final = 1
"""prctl option (linux/prctl.h): the signal a process gets when its parent dies."""
START_TIMEOUT_S: Final = 60.0
"""The zygote's own start is one import of the broker (1.5 s unloaded)."""


# -- the zygote ---------------------------------------------------------------------------------


def serve(path: str) -> None:
    """Fork broker children on request until stdin reaches EOF (the test session is over)."""
    from tests.support import broker_child  # the imports every child would otherwise repeat

    _warm()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C reaches the children; the session ends us
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through wake_w
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "reap")
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "parent")
    by_pid: dict[int, socket.socket] = {}
    by_conn: dict[socket.socket, int] = {}
    print("ready", flush=True)

    def fork(conn: socket.socket) -> None:
        message, fds, _flags, _address = socket.recv_fds(
            conn, REQUEST_BYTES_MAX, DESCRIPTORS_PER_CHILD
        )
        try:
            if len(fds) != DESCRIPTORS_PER_CHILD:
                raise ValueError(f"a request with {len(fds)} descriptors")
            request = json.loads(message)
            if threading.active_count() != 1:  # a fork copies no thread but their locks
                raise RuntimeError(f"the zygote holds threads: {threading.enumerate()}")
            zygote = os.getpid()
            pid = os.fork()
            if pid == 0:
                closing = [selector, listener, conn, *by_conn]
                _child(request, fds, closing, (wake_r, wake_w), zygote, broker_child.run)
        finally:
            for fd in fds:
                os.close(fd)
        by_pid[pid], by_conn[conn] = conn, pid
        selector.register(conn, selectors.EVENT_READ, "command")
        conn.send(json.dumps({"pid": pid}).encode())

    def reap() -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(wake_r, 4096):
                pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = by_pid.pop(pid, None)
            if conn is not None:
                del by_conn[conn]
                selector.unregister(conn)
                with contextlib.suppress(OSError):
                    conn.send(json.dumps({"exit_code": os.waitstatus_to_exitcode(status)}).encode())
                conn.close()

    def command(conn: socket.socket) -> None:
        if conn not in by_conn:  # reaped earlier in the same select round: closed already
            return
        try:
            data = conn.recv(64)
        except OSError:
            data = b""
        pid = by_conn[conn]
        if data in (b"KILL", b""):  # "" : the client is gone, and its child with it
            os.kill(pid, signal.SIGKILL)
        elif data == b"TERM":
            os.kill(pid, signal.SIGTERM)
        if not data:
            del by_conn[conn], by_pid[pid]
            selector.unregister(conn)
            conn.close()

    def isolated(handle: Any, conn: socket.socket) -> None:
        """One client's bad request (or one gone mid-request) must not end the zygote, whose
        other children would then be orphans nobody can signal any more."""
        try:
            handle(conn)
        except Exception:
            traceback.print_exc()
            pid = by_conn.pop(conn, None)
            if pid is not None:
                by_pid.pop(pid, None)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # reaped by the next waitpid round
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(conn)
            conn.close()

    while True:
        for key, _events in selector.select():
            if key.data == "accept":
                conn, _ = listener.accept()
                isolated(fork, conn)
            elif key.data == "reap":
                reap()
            elif key.data == "command":
                isolated(command, key.fileobj)  # type: ignore[arg-type]
            elif not os.read(sys.stdin.fileno(), 4096):  # the session is over
                for pid in list(by_pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return


def _warm() -> None:
    """What a broker imports and caches only once it serves: its HTTP server's protocol
    modules, and kio's classes and readers of every request and response version it decodes
    (0.3 s of a first start; a forked child inherits them, as it inherits every import)."""
    import uvicorn.lifespan.off
    import uvicorn.protocols.http.auto
    import uvicorn.protocols.websockets.auto  # noqa: F401

    from shoal.protocol import _kio
    from shoal.protocol.versions import SUPPORTED_APIS

    for api in SUPPORTED_APIS.values():
        for version in range(api.min_version, api.max_version + 1):
            with contextlib.suppress(Exception):  # kio may lack a version shoal refuses anyway
                _kio.request_class(api.api_key, version)
                _kio.response_class(api.api_key, version)
                _kio._request_reader(api.api_key, version)


def _die_with(zygote: int) -> None:
    """SIGKILL this child when the zygote dies (Linux's PR_SET_PDEATHSIG): a broker whose
    zygote is gone can no longer be signalled or reaped through it, and would hold its port
    for the rest of the session."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != zygote:  # it died before the request took effect
        os._exit(1)


def _child(
    request: dict[str, Any],
    fds: list[int],
    closing: list[Any],
    pipe: tuple[int, int],
    zygote: int,
    run: Any,
) -> None:
    """The forked broker: the zygote's sockets closed, stdio set, run until the end; never
    returns into the zygote's loop."""
    code = 1
    try:
        _die_with(zygote)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for thing in closing:
            thing.close()
        for fd in pipe:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        # The test's environment as it is now, as an executed child would get it (the
        # zygote's is the one of the test that happened to start it).
        os.environ.clear()
        os.environ.update(request["env"])
        run(request["config"])
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)  # as the interpreter reports a message exit
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


# -- the client (the test session's side) -------------------------------------------------------


class ForkedChild:
    """A broker child forked by the zygote, with what BrokerProcess needs of ``Popen``."""

    def __init__(self, conn: socket.socket, pid: int, stdout: IO[str]) -> None:
        self.conn = conn
        self.pid = pid
        self.stdout: IO[str] | None = stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self._wait(0.0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._wait(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"broker child {self.pid}", timeout or 0.0)
        return code

    def _wait(self, timeout: float | None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        readable, _, _ = select.select([self.conn], [], [], timeout)
        if not readable:
            return None
        message = self.conn.recv(4096)
        self.conn.close()
        if not message:
            # The zygote itself died, and its death signal killed the child (_die_with); kill
            # it here too in case that did not happen (a non-Linux system).
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            self.returncode = -signal.SIGKILL
            return self.returncode
        self.returncode = int(json.loads(message)["exit_code"])
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None and sig in (signal.SIGKILL, signal.SIGTERM):
            with contextlib.suppress(OSError):  # the zygote reaped it meanwhile
                self.conn.send(b"KILL" if sig == signal.SIGKILL else b"TERM")
        elif self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The session's zygote process, started on first use (see :func:`fork_server`)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="shoal-zygote-"))
        self.path = str(self.dir / "zygote.sock")
        self.log = self.dir / "zygote.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.zygote", self.path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=REPO,
            )
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], START_TIMEOUT_S)
        if not readable or self.process.stdout.readline() != b"ready\n":
            self.close()
            raise AssertionError(f"the fork server did not start: {self.log.read_text()[-2000:]}")

    def spawn(self, config: dict[str, Any], log_path: Path) -> ForkedChild:
        read_end, write_end = os.pipe()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with open(log_path, "ab") as log:
                conn.connect(self.path)
                request = {"config": config, "env": dict(os.environ)}
                socket.send_fds(conn, [json.dumps(request).encode()], [write_end, log.fileno()])
        except BaseException:
            conn.close()
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        stdout = os.fdopen(read_end, "r")
        readable, _, _ = select.select([conn], [], [], START_TIMEOUT_S)
        reply = conn.recv(4096) if readable else b""
        if not reply:
            stdout.close()
            conn.close()
            raise AssertionError(f"the fork server did not fork: {self.log.read_text()[-2000:]}")
        return ForkedChild(conn, int(json.loads(reply)["pid"]), stdout)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """EOF on the zygote's stdin: it SIGKILLs the children left and exits."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_server: ForkServer | None = None
_server_lock = threading.Lock()


def fork_server() -> ForkServer:
    """The session's zygote, started on first use and again if it died; ended at exit."""
    global _server
    with _server_lock:
        if _server is None or not _server.alive:
            if _server is None:
                atexit.register(_close_server)
            else:
                _server.close()  # its pipes and directory
            _server = ForkServer()
        return _server


def _close_server() -> None:
    if _server is not None:
        _server.close()


if __name__ == "__main__":
    serve(sys.argv[1])
