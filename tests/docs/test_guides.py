"""The guides' commands are real: every ``sh`` and ``python`` block of docs/operations.md,
docs/message-contracts.md and docs/patterns.md runs, in document order, in a temporary
directory, and must exit 0 (issue 21).

The guides are written for a broker on shoal's default addresses (``127.0.0.1:9092``, HTTP on
``127.0.0.1:8080``) and a data directory in ``/var/lib/shoal``; the test swaps in free ports and
a temporary directory, so it can run beside other tests. Each block runs in its own process
(``bash -euo pipefail``), or for ``python`` in this interpreter as a fresh ``__main__`` module
in the same directory (the imports are paid once, not per block), so state passes between
blocks through files, as it does for a reader who pastes them one by one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.kafka_peer import free_port
from tests.support.broker import BrokerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
BLOCK_TIMEOUT_S = 120
"""One block: a broker start with recovery, or an app that waits for its records."""
KAFKA_ADDRESS = "127.0.0.1:9092"
HTTP_ADDRESS = "127.0.0.1:8080"
DATA_ROOT = "/var/lib/shoal"


def blocks(doc: str) -> list[tuple[str, str]]:
    """(language, code) of each runnable block, in order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer((DOCS / doc).read_text())]


def run_python(code: str, workdir: Path) -> None:
    """A python block, as ``python block.py`` in ``workdir`` would run it."""
    before = Path.cwd()
    os.chdir(workdir)
    try:
        exec(compile(code, "<block>", "exec"), {"__name__": "__main__"})
    finally:
        os.chdir(before)


def run_blocks(doc: str, workdir: Path, replacements: dict[str, str]) -> list[str]:
    """Run ``doc``'s blocks with ``replacements`` applied; return each sh block's stdout."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    outputs = []
    found = blocks(doc)
    assert found, f"{doc} has no runnable block"
    for n, (language, code) in enumerate(found, 1):
        for old, new in replacements.items():
            code = code.replace(old, new)
        if language == "python":
            try:
                run_python(code, workdir)
            except BaseException as exc:
                raise AssertionError(f"{doc}, block {n} (python) failed:\n{code}") from exc
            continue
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, (
            f"{doc}, block {n} (sh) exited {done.returncode}:\n{code}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
        outputs.append(done.stdout)
    return outputs


@pytest.fixture
def broker_pid_file(tmp_path: Path) -> Iterator[Path]:
    """Where operations.md's blocks keep the pid of the broker they start; the broker is
    killed at the end whatever the outcome."""
    pid_file = tmp_path / "var-lib-shoal" / "shoal.pid"
    yield pid_file
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def test_operations_guide(tmp_path: Path, broker_pid_file: Path) -> None:
    outputs = run_blocks(
        "operations.md",
        tmp_path,
        {
            KAFKA_ADDRESS: f"127.0.0.1:{free_port()}",
            HTTP_ADDRESS: f"127.0.0.1:{free_port()}",
            DATA_ROOT: str(broker_pid_file.parent),
        },
    )
    # The restore block ends by reading the topic back from the restored directory.
    restored = next(out for out in reversed(outputs) if "o-1=" in out)
    assert restored.splitlines()[-2:] == ['o-1={"id":1}', 'o-2={"id":2}']


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the guides that need one running (their topics differ)."""
    process = BrokerProcess(tmp_path_factory.mktemp("docs-broker") / "data").start()
    yield process
    process.kill()


@pytest.mark.parametrize("doc", ["message-contracts.md", "patterns.md"])
def test_guides_against_a_broker(doc: str, broker: BrokerProcess, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    run_blocks(
        doc,
        workdir,
        {
            KAFKA_ADDRESS: broker.bootstrap_servers,
            HTTP_ADDRESS: broker.http_url.removeprefix("http://"),
        },
    )
