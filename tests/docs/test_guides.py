"""The guides' code is real: every ``sh`` and ``python`` block of every page under docs/ runs,
in document order, in a temporary directory, and must exit 0 — unless it is marked not-run
with a reason (tests/docs/blocks.py says how blocks are marked; tests/docs/test_blocks.py
checks that every block is run, parsed or marked, issue 21).

The guides are written for a broker on shoal's default addresses (``127.0.0.1:9092``, HTTP on
``127.0.0.1:8080``) and a data directory in ``/var/lib/shoal``; the test swaps in free ports and
a temporary directory, so it can run beside other tests. It also sets ``SHOAL_BOOTSTRAP`` and
``SHOAL_REGISTRY_URL`` (the CLI's defaults) and ``SHOAL_KAFKA_LISTEN`` / ``SHOAL_HTTP_LISTEN``
(a ``shoal broker`` a block starts) to the same ports, so a block that relies on the defaults
runs as it would for a reader. Each block runs in its own process (``bash -euo pipefail``), or
for ``python`` in this interpreter as a fresh ``__main__`` module in the same directory (the
imports are paid once, not per block), so state passes between blocks through files, as it
does for a reader who pastes them one by one. Processes a block leaves running must write
their pid to a ``*.pid`` file; they are killed at the end whatever the outcome.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from tests.docs.blocks import (
    SHARED_BROKER_PAGES,
    Block,
    console_steps,
    doc_blocks,
    shows,
)
from tests.peers.kafka_peer import free_port
from tests.support.broker import BrokerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BLOCK_TIMEOUT_S: Final = 120
"""One block: a broker start with recovery, or an app that waits for its records."""
KAFKA_ADDRESS: Final = "127.0.0.1:9092"
HTTP_ADDRESS: Final = "127.0.0.1:8080"
HTTP_SHORT_ADDRESS: Final = "localhost:8080"
DATA_ROOT: Final = "/var/lib/shoal"


def run_python(code: str, workdir: Path) -> None:
    """A python block, as ``python block.py`` in ``workdir`` would run it."""
    before = Path.cwd()
    os.chdir(workdir)
    try:
        exec(compile(code, "<block>", "exec"), {"__name__": "__main__"})
    finally:
        os.chdir(before)


def run_console(block: Block, code: str, workdir: Path, env: dict[str, str]) -> None:
    """A ``console`` block: each ``$`` command runs (its exit status is not checked: these
    blocks show errors), and every line shown under it must be in what it printed."""
    for command, expected in console_steps(code):
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
        printed = done.stdout + done.stderr
        missing = [line for line in expected if not shows(line, printed)]
        assert not missing, (
            f"{block.where}: `{command}` did not print {missing}; it printed:\n{printed[-3000:]}"
        )


def run_blocks(doc: str, workdir: Path, replacements: dict[str, str]) -> list[str]:
    """Run ``doc``'s blocks with ``replacements`` applied; return each shell block's stdout."""
    kafka = replacements.get(KAFKA_ADDRESS, KAFKA_ADDRESS)
    http = replacements.get(HTTP_ADDRESS, HTTP_ADDRESS)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "SHOAL_BOOTSTRAP": kafka,
        "SHOAL_REGISTRY_URL": f"http://{http}",
        "SHOAL_KAFKA_LISTEN": kafka,
        "SHOAL_HTTP_LISTEN": http,
        "PYTHONFAULTHANDLER": "1",  # a hung process's stacks, see stacks_of_left_running
    }
    replacements = {**replacements, HTTP_SHORT_ADDRESS: http}
    outputs = []
    found = [b for b in doc_blocks(doc) if b.runs]
    assert found, f"{doc} has no runnable block"
    for block in found:
        code = block.code
        for old, new in replacements.items():
            code = code.replace(old, new)
        if block.marker == "file":
            (workdir / block.marker_value).write_text(code, encoding="utf-8")
            continue
        if block.language == "python":
            try:
                run_python(code, workdir)
            except BaseException as exc:
                raise AssertionError(f"{block.where} failed:\n{code}") from exc
            continue
        if block.language == "console":
            run_console(block, code, workdir, env)
            continue
        shell = code
        try:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", shell],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{block.where} did not finish in {BLOCK_TIMEOUT_S} s:\n{shell}\n"
                + stacks_of_left_running(workdir)
            ) from None
        assert done.returncode == 0, (
            f"{block.where} exited {done.returncode}:\n{shell}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
        outputs.append(done.stdout)
    return outputs


def stacks_of_left_running(root: Path) -> str:
    """The Python stacks of the processes the blocks started (SIGABRT makes faulthandler,
    switched on by PYTHONFAULTHANDLER, print them to the process's log), with the logs' tails:
    what a hung block was waiting for."""
    for pid_file in root.rglob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGABRT)
    time.sleep(1)  # bounded: faulthandler writes at once
    return "".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-6000:]}\n"
        for log in sorted(root.rglob("*.log"))
    )


def kill_left_running(root: Path) -> None:
    """SIGKILL every process whose pid a block wrote to a ``*.pid`` file under ``root``."""
    for pid_file in root.rglob("*.pid"):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    kill_left_running(tmp_path)


def test_operations_guide(workdir: Path) -> None:
    data_root = workdir / "var-lib-shoal"
    outputs = run_blocks(
        "operations.md",
        workdir,
        {
            KAFKA_ADDRESS: f"127.0.0.1:{free_port()}",
            HTTP_ADDRESS: f"127.0.0.1:{free_port()}",
            DATA_ROOT: str(data_root),
        },
    )
    # The restore block ends by reading the topic back from the restored directory.
    restored = next(out for out in reversed(outputs) if "o-1=" in out)
    assert restored.splitlines()[-2:] == ['o-1={"id":1}', 'o-2={"id":2}']


def test_getting_started(workdir: Path) -> None:
    outputs = run_blocks(
        "getting-started.md",
        workdir,
        {KAFKA_ADDRESS: f"127.0.0.1:{free_port()}", HTTP_ADDRESS: f"127.0.0.1:{free_port()}"},
    )
    consumed = next(out for out in outputs if "alice=hello" in out)
    records = [line for line in consumed.splitlines() if re.fullmatch(r"\d+/\d+ \w+=\w+", line)]
    assert sorted(line.split(" ", 1)[1] for line in records) == [
        "alice=hello",
        "bob=hi",
    ]
    replies = next(out for out in outputs if "back," in out)
    assert sorted(line for line in replies.splitlines() if "back," in line) == [
        "alice: hello back, alice",
        "bob: hi back, bob",
        "carol: hey back, carol",
    ]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the guides that need one running (their topics differ)."""
    # No initial rebalance delay (Kafka's 3 s): the groups the guides start get their
    # partitions at once, which saves seconds per group and changes nothing they show.
    process = BrokerProcess(
        tmp_path_factory.mktemp("docs-broker") / "data", group_initial_rebalance_delay_ms=0
    ).start()
    yield process
    process.kill()


@pytest.mark.parametrize("doc", SHARED_BROKER_PAGES)
def test_guides_against_a_broker(doc: str, broker: BrokerProcess, workdir: Path) -> None:
    work = workdir / "work"
    work.mkdir()
    run_blocks(
        doc,
        work,
        {
            KAFKA_ADDRESS: broker.bootstrap_servers,
            HTTP_ADDRESS: broker.http_url.removeprefix("http://"),
        },
    )
