"""shoal as a user gets it: the wheel or sdist built from this checkout, installed with plain
``pip install`` (no dev extras, no other extras) into a fresh virtual environment.

Nothing here imports the shoal under test: every step is a child process of that environment's
own ``python`` or ``shoal``, started outside the source tree with PYTHONPATH cleared, so a module
the package forgot to ship, or a dependency it forgot to declare, fails here as it would for a
user. ``pip`` reads the machine's pip cache as usual, which keeps the installs quick.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.peers.kafka_peer import free_port

REPO: Final = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S: Final = 600.0
"""python -m build: an isolated environment with setuptools, then the sdist, then the wheel."""
INSTALL_TIMEOUT_S: Final = 600.0
"""pip install of shoal and its ~40 dependencies, from the pip cache when it is warm."""
COMMAND_TIMEOUT_S: Final = 120.0
BROKER_START_TIMEOUT_S: Final = 60.0
BROKER_STOP_TIMEOUT_S: Final = 30.0


class InstallCheckError(AssertionError):
    """A step a user would take failed; the message carries its command and output."""


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as file:
        version: str = tomllib.load(file)["project"]["version"]
    return version


def clean_env() -> dict[str, str]:
    """The caller's environment without what would let a child find the source tree's shoal,
    the dev venv, or settings a developer exported (SHOAL_*)."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE")
    return {
        key: value
        for key, value in os.environ.items()
        if key not in dropped and not key.startswith("SHOAL_")
    }


def run(
    command: Sequence[str | Path],
    *,
    cwd: Path,
    timeout_s: float = COMMAND_TIMEOUT_S,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; any exit code but 0 fails with its full output."""
    argv = [str(part) for part in command]
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=clean_env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InstallCheckError(f"{argv} did not finish in {timeout_s} s") from exc
    if done.returncode != 0:
        raise InstallCheckError(
            f"{argv} exited with {done.returncode}\n--- stdout\n{done.stdout[-6000:]}\n"
            f"--- stderr\n{done.stderr[-6000:]}"
        )
    return done


def source_copy(dest: Path) -> Path:
    """The checkout's files as a fresh clone has them (tracked, plus new files not ignored), so
    the build neither sees a developer's build/ or egg-info nor writes into the worktree."""
    listed = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted but not yet staged is still listed
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


@dataclass(frozen=True)
class Artifacts:
    wheel: Path
    sdist: Path
    build_output: str


def build(work: Path) -> Artifacts:
    """``python -m build``: the sdist, then the wheel built from that sdist (so a file the sdist
    misses also breaks the wheel), each in its own isolated build environment."""
    source = source_copy(work / "source")
    dist = work / "dist"
    done = run(
        [sys.executable, "-m", "build", "--outdir", dist, source],
        cwd=work,
        timeout_s=BUILD_TIMEOUT_S,
    )
    wheels = sorted(dist.glob("shoal-*.whl"))
    sdists = sorted(dist.glob("shoal-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise InstallCheckError(f"expected one wheel and one sdist in {dist}: {wheels + sdists}")
    return Artifacts(wheels[0], sdists[0], done.stdout + done.stderr)


@dataclass(frozen=True)
class Installed:
    """A fresh virtual environment with one shoal artifact installed, and a scratch directory
    outside the source tree to run things from."""

    venv: Path
    scratch: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def shoal(self) -> Path:
        return self.venv / "bin" / "shoal"

    def run(
        self,
        *command: str | Path,
        cwd: Path | None = None,
        timeout_s: float = COMMAND_TIMEOUT_S,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run(command, cwd=cwd or self.scratch, timeout_s=timeout_s, stdin=stdin)

    def python_code(self, code: str, cwd: Path | None = None) -> str:
        return run([self.python, "-c", code], cwd=cwd or self.scratch).stdout


def install(artifact: Path, work: Path) -> Installed:
    """A new venv (with its own pip, not the dev venv's packages) and ``pip install artifact``."""
    venv = work / "venv"
    scratch = work / "scratch"
    scratch.mkdir(parents=True)
    run([sys.executable, "-m", "venv", venv], cwd=work)
    run(
        [venv / "bin" / "pip", "install", "--no-input", "--disable-pip-version-check", artifact],
        cwd=work,
        timeout_s=INSTALL_TIMEOUT_S,
    )
    return Installed(venv, scratch)


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    http_url: str
    """The HTTP face, which serves the schema registry at its root."""


@contextmanager
def shoal_broker(installed: Installed, data_dir: Path) -> Iterator[Broker]:
    """The installed ``shoal broker`` on free loopback ports, stopped with SIGTERM, which must
    end it cleanly (exit code 0)."""
    bootstrap = f"127.0.0.1:{free_port()}"
    http = f"127.0.0.1:{free_port()}"
    log_path = data_dir.with_name(data_dir.name + ".log")
    command = [
        str(installed.shoal), "broker",
        "--data-dir", str(data_dir),
        "--kafka-listen", bootstrap,
        "--http-listen", http,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=installed.scratch, env=clean_env(), stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + BROKER_START_TIMEOUT_S
        while b"shoal broker ready" not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise InstallCheckError(
                    f"shoal broker did not start:\n{log_path.read_text(errors='replace')[-6000:]}"
                )
            time.sleep(0.1)
        yield Broker(bootstrap, f"http://{http}")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(BROKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise InstallCheckError(
                f"shoal broker ignored SIGTERM for {BROKER_STOP_TIMEOUT_S} s"
            ) from None
    if code != 0:
        raise InstallCheckError(
            f"shoal broker exited with {code} on SIGTERM:\n"
            f"{log_path.read_text(errors='replace')[-6000:]}"
        )
