"""Fixtures for the CLI tests: an embedded broker per test and two ways to run ``shoal``.

``cli`` runs ``shoal.cli.main`` in this process (fast; stdin, stdout and stderr captured);
``run_shoal`` runs the installed ``shoal`` script as a subprocess, for what only a real process
shows (the entry point, exit codes, signals, pipes).
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from shoal.cli import main
from shoal.embedded import EmbeddedBroker

SUBPROCESS_TIMEOUT_S = 60
"""A command that has not finished by then is hung; the test fails instead of waiting on."""


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class Cli(Protocol):
    def __call__(self, *argv: str, stdin: bytes = b"") -> Result: ...


@pytest.fixture
def broker(shoal_broker_factory: Callable[..., EmbeddedBroker]) -> EmbeddedBroker:
    """Three partitions per auto-created topic, so per-partition behaviour is visible."""
    return shoal_broker_factory(num_partitions=3)


@pytest.fixture
def cli(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    # Through the environment, so that every test also checks the SHOAL_BOOTSTRAP default.
    monkeypatch.setenv("SHOAL_BOOTSTRAP", broker.bootstrap_servers)

    def run(*argv: str, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()  # drop anything printed before this command
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def shoal_script() -> str:
    """The console script installed next to this interpreter (the venv's ``shoal``)."""
    script = Path(sys.executable).parent / "shoal"
    if not script.exists():
        pytest.fail(f"the shoal console script is not installed at {script}")
    return str(script)


def run_shoal(
    *argv: str, stdin: bytes = b"", env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [shoal_script(), *argv],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
