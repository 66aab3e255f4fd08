"""The cleaner's process ends once the broker that started it is gone, and writes nothing more:
on Linux at once (``PR_SET_PDEATHSIG``), elsewhere at its next step (its own check of its
parent). A stand-in broker (``cleaner_parent.py``) starts the cleaner with its clean held at the
first step (before any ``.cleaned`` file), and is SIGKILLed.

The waits are bounded, which only keeps a broken test from hanging: nothing here measures time.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from shoal.storage import LogManager
from shoal.testing.gil_hold import GilHold
from tests.storage.test_cleaner_process import _dirty_log, _wait_for

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(child) for child in f.read().split()]
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (the process it was reparented to may not reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads /proc (Linux)")
@pytest.mark.parametrize("mode", ["pdeathsig", "no-pdeathsig"])
def test_the_cleaners_process_ends_with_its_broker_and_writes_nothing_more(
    tmp_path: Path, mode: str
) -> None:
    data = tmp_path / "data"
    with LogManager.open(str(data)) as manager:
        dirty = _dirty_log(manager)
        folder = dirty.directory
    hold = GilHold(tmp_path)
    parent = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/storage/cleaner_parent.py"),
            str(data),
            pickle.dumps(hold).hex(),
            mode,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])},
        stdout=subprocess.PIPE,
    )
    try:
        _wait_for(hold.has_started, "the clean to reach its hold")
        (child,) = _children(parent.pid)
        parent.kill()
        parent.wait()
        if mode == "no-pdeathsig":
            # Only the child's own check can end it now, and it is held: still there.
            assert _running(child), "the process died with its parent although no signal was set"
            hold.release()
        _wait_for(lambda: not _running(child), "the cleaner's process to end")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    assert hold.steps_after_hold() == 0, "the orphan went on cleaning"
    assert not [f for f in os.listdir(folder) if f.endswith(".cleaned")]
