"""SIGKILL at the steps of a clean on the real file system: after recovery each group of
segments holds its data from before the clean or from after it, and a second clean reaches the
same log as an uninterrupted one.

The child (``clean_killer.py``) kills itself at its N-th open, remove, rename or directory fsync;
N runs over a spread of those calls and every call of the swap itself. (A SIGKILL keeps the
page cache: the power-loss test, test_cleaner_crash.py, covers the fsyncs.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from shoal.storage import LogManager
from tests.storage.cleaning import NOW, append, read_records, run_clean
from tests.storage.test_cleaner_crash import CONFIG, _swapped_up_to

ROOT = Path(__file__).resolve().parents[2]


def _build(directory: Path) -> None:
    manager = LogManager.open(str(directory), default_config=CONFIG)
    plog = manager.create("t", 0)
    for i in range(30):
        value = None if i == 20 else f"v{i}".encode()
        append(plog, [(f"k{i % 4}".encode(), value)], producer=(3, 0, i) if i % 7 == 0 else None)
    manager.close()


def _run(directory: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tests/storage/clean_killer.py"), str(directory), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )


def _records(directory: Path) -> list[object]:
    manager = LogManager.open(str(directory), default_config=CONFIG)
    try:
        plog = manager.get("t", 0)
        assert plog is not None
        return list(read_records(plog))
    finally:
        manager.close()


def test_sigkill_at_each_step_of_a_clean(tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    _build(pristine)
    before = _records(pristine)
    reference = tmp_path / "reference"
    shutil.copytree(pristine, reference)
    done = _run(reference, 0)
    assert done.returncode == 0, done.stderr
    total_calls = int(done.stdout.split()[0])
    after = _records(reference)
    kills = 0
    # Every call would take minutes of child start-ups: a spread of the writing calls and
    # every call of the swap itself (the last ones: manifest, removals, renames, fsyncs).
    step = max(1, total_calls // 6)
    chosen = sorted(
        set(range(1, total_calls + 1, step)) | set(range(total_calls - 12, total_calls + 1))
    )
    for kill_at in chosen:
        directory = tmp_path / f"kill-{kill_at}"
        shutil.copytree(pristine, directory)
        killed = _run(directory, kill_at)
        assert killed.returncode in (-signal.SIGKILL, 0), killed.stderr
        kills += killed.returncode == -signal.SIGKILL
        records = _records(directory)
        assert _swapped_up_to(records, before, after) is not None, f"a mix after kill {kill_at}"
        assert _cleaned_again(directory) == after
        shutil.rmtree(directory)
    assert kills == len(chosen)


def _cleaned_again(directory: Path) -> list[object]:
    manager = LogManager.open(str(directory), default_config=CONFIG)
    try:
        plog = manager.get("t", 0)
        assert plog is not None
        run_clean(plog, NOW)
        return list(read_records(plog))
    finally:
        manager.close()
