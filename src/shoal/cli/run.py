"""``shoal run MODULE:ATTR``: run a shoal App as a service until SIGTERM or SIGINT.

ATTR names an :class:`~shoal.app.App`, or a function that takes no arguments and returns one
(so that configuration can be read at start, not at import). With ``--workers N`` the command
supervises N worker processes, each running the App on its own: the consumer groups share the
partitions out among them. The supervisor forwards SIGTERM/SIGINT, and stops every worker and
exits 1 as soon as one of them fails, so that the orchestrator restarts the whole service
instead of leaving it running with fewer consumers than it was deployed with.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Final

from shoal.app import App
from shoal.app.app import STOP_TIMEOUT_S
from shoal.cli.common import CliError, UsageError

WORKERS_MAX: Final = 256
"""Far beyond the cores of one host; a larger number is a typo, not a deployment."""
SUPERVISE_POLL_S: Final = 0.1
"""How often the supervisor looks at its workers; it also bounds how late a failure is seen."""
WORKER_INDEX_ENV: Final = "SHOAL_WORKER_INDEX"
"""Set in each worker (0..N-1), for apps that want to know which one they are."""
SHUTDOWN_TIMEOUT_S_MAX: Final = 3600.0
"""An hour: a longer graceful stop than any orchestrator waits for is a typo."""
PER_PROCESS_SCHEMES: Final = ("memory", "embedded")
"""Broker URLs whose broker lives inside the process: N workers would be N separate brokers."""


def add_run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="run a shoal App until SIGTERM/SIGINT",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("app", metavar="MODULE:ATTR", type=app_spec, help="e.g. billing.main:app")
    run.add_argument(
        "--workers",
        metavar="N",
        type=_workers,
        default=1,
        help="worker processes, each running the app (default 1: no supervisor)",
    )
    run.add_argument(
        "--http-port",
        metavar="PORT",
        type=_port,
        default=None,
        help="serve /livez, /readyz and /metrics on this port (worker i: PORT+i; 0: any)",
    )
    run.add_argument(
        "--http-host",
        metavar="HOST",
        default="127.0.0.1",
        help="address for --http-port (default 127.0.0.1; 0.0.0.0 for all interfaces)",
    )
    run.add_argument(
        "--shutdown-timeout",
        metavar="SECONDS",
        type=_shutdown_timeout,
        default=STOP_TIMEOUT_S,
        help="after SIGTERM/SIGINT, how long in-flight records, the last commits and the "
        f"disconnect may take before they are abandoned (default {STOP_TIMEOUT_S:g})",
    )
    add_app_dir_option(run)
    run.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="the app's log level (default info)",
    )
    run.set_defaults(run=run_app, command_parser=run)


def add_app_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--app-dir",
        metavar="DIR",
        default=".",
        help="directory MODULE is imported from (default: the current directory)",
    )


def app_spec(text: str) -> tuple[str, str]:
    """argparse type for ``MODULE:ATTR``."""
    module, sep, attr = text.partition(":")
    if not sep or not module or not attr:
        raise argparse.ArgumentTypeError(
            f"expected MODULE:ATTR (e.g. billing.main:app), got {text!r}"
        )
    return module, attr


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of workers, got {text!r}") from None
    if not 1 <= value <= WORKERS_MAX:
        raise argparse.ArgumentTypeError(f"expected 1..{WORKERS_MAX} workers, got {value}")
    return value


def _shutdown_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= SHUTDOWN_TIMEOUT_S_MAX:
        raise argparse.ArgumentTypeError(
            f"expected 0 < seconds <= {SHUTDOWN_TIMEOUT_S_MAX:g}, got {text}"
        )
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535, got {value}")
    return value


# -- loading the app ---------------------------------------------------------------------------


def _where(exc: BaseException) -> str:
    """`` (file:line)`` of the innermost frame, so a one-line error still points at the bug."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def load_app(spec: tuple[str, str], app_dir: str) -> App:
    """Import MODULE from ``app_dir`` (or anywhere on sys.path) and return its App."""
    module_name, attr = spec
    directory = Path(app_dir).resolve()
    if not directory.is_dir():
        raise CliError(f"--app-dir {app_dir!r} is not a directory")
    # The console script's sys.path starts with its own bin directory, not the current one.
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise CliError(
                f"no module named {module_name!r} in {directory} or on sys.path"
            ) from None
        raise CliError(f"cannot import {module_name!r}: {exc}{_where(exc)}") from None
    except Exception as exc:
        # The user's module failed while importing: one line with the place it failed.
        raise CliError(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}{_where(exc)}"
        ) from None
    target: object = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CliError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(target, App) and callable(target):
        try:
            target = target()
        except Exception as exc:
            raise CliError(
                f"{module_name}:{attr}() failed: {type(exc).__name__}: {exc}{_where(exc)}"
            ) from None
    if not isinstance(target, App):
        raise CliError(
            f"{module_name}:{attr} is a {type(target).__name__}, not a shoal App "
            "(or a function returning one)"
        )
    return target


# -- running -----------------------------------------------------------------------------------


def run_app(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    # Loaded here in the supervisor too: a typo fails once, clearly, rather than in N workers.
    app = load_app(args.app, args.app_dir)
    if args.workers == 1:
        return _run_one(app, args.http_host, args.http_port, args.shutdown_timeout)
    scheme = app.url.partition("://")[0]
    if scheme in PER_PROCESS_SCHEMES:
        raise UsageError(
            f"--workers {args.workers} needs a broker the workers share; {scheme}:// starts "
            "one inside each process"
        )
    if args.http_port is not None and args.http_port + args.workers - 1 > 65535:
        raise UsageError(f"--http-port {args.http_port} + {args.workers} workers passes 65535")
    return _supervise(args)


def _run_one(app: App, http_host: str, http_port: int | None, shutdown_timeout_s: float) -> int:
    try:
        app.run(http_host=http_host, http_port=http_port, shutdown_timeout_s=shutdown_timeout_s)
    except OSError as exc:  # the health port is taken, the broker address does not resolve
        raise CliError(str(exc)) from None
    except Exception as exc:
        raise CliError(f"{app.name} failed: {type(exc).__name__}: {exc}") from None
    return 0


def _worker_command(args: argparse.Namespace, index: int) -> list[str]:
    module, attr = args.app
    command = [
        sys.executable,
        "-m",
        "shoal.cli",
        "run",
        f"{module}:{attr}",
        "--app-dir",
        str(Path(args.app_dir).resolve()),
        "--http-host",
        args.http_host,
        "--log-level",
        args.log_level,
        "--shutdown-timeout",
        str(args.shutdown_timeout),
    ]
    if args.http_port is not None:
        # Port 0 stays 0 in every worker (each gets a free port of its own).
        command += ["--http-port", str(args.http_port + index if args.http_port else 0)]
    return command


class _Workers:
    """The worker processes, and the signals the supervisor passes on to them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        for index in range(args.workers):
            env = {**os.environ, WORKER_INDEX_ENV: str(index)}
            # A fresh interpreter per worker, not a fork: the app's client libraries start
            # threads, and a fork copies their locks but not the threads holding them.
            self.processes.append(subprocess.Popen(_worker_command(args, index), env=env))

    def forward(self, signum: int, _frame: FrameType | None) -> None:
        self.signal_all(signum)

    def signal_all(self, signum: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.send_signal(signum)
                except ProcessLookupError:
                    pass  # it exited between poll and send

    def failed(self) -> list[tuple[int, int]]:
        """(index, exit code) of the workers that exited with a non-zero code."""
        return [
            (i, code)
            for i, p in enumerate(self.processes)
            if (code := p.poll()) is not None and code != 0
        ]

    def running(self) -> bool:
        return any(p.poll() is None for p in self.processes)


def _supervise(args: argparse.Namespace) -> int:
    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in handled}
    workers = _Workers(args)
    try:
        for sig in handled:
            signal.signal(sig, workers.forward)
        failure_seen = False
        while workers.running():
            if not failure_seen and workers.failed():
                failure_seen = True
                workers.signal_all(signal.SIGTERM)
            time.sleep(SUPERVISE_POLL_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # Nothing is left behind, whatever stopped the supervisor (a crash included).
        for process in workers.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    failed = workers.failed()
    if failed:
        described = ", ".join(f"worker {i} exited with {_exit_text(code)}" for i, code in failed)
        raise CliError(described)
    return 0


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
