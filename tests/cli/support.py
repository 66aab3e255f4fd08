"""Helpers for the CLI tests: the result of one ``shoal`` command, and the installed ``shoal``
script run as a subprocess (``run_shoal``), for what only a real process shows (the entry point,
exit codes, signals, pipes).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

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
