"""Coverage-guided fuzzing (atheris, libFuzzer) of the request decoder, record batches, the
schema registry's parsers, the admin API's parameters and the SASL (SCRAM, PLAIN,
OAUTHBEARER with its JWT checks) servers.

Each target runs in its own process (a native abort must fail the test, not kill pytest) from
the committed seed corpus (tests/fuzz/corpus/<target>, written by ``python -m tests.fuzz.seeds``)
for a bounded number of inputs. Property: a clear error, never a crash (an exception the
layer does not promise), a hang (``-timeout``, seconds per input) or an unbounded allocation
(``-rss_limit_mb``). New inputs go to a temporary directory; the committed corpus is only read.

Quick mode (CI): :data:`RUNS` inputs per target, a few seconds each. Full mode: ``make fuzz``
(``SHOAL_FUZZ_RUNS``, 5 million per target by default: 10 million over the decoder and record
paths). Every crash found becomes a file under tests/fuzz/regressions/<target>, replayed at the
start of that target's every run, and a named regression test where it was fixed.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from tests.fuzz.runner import TARGETS

pytestmark = pytest.mark.integration

HERE: Final = Path(__file__).parent
ROOT: Final = HERE.parent.parent
RUNS: Final = int(os.environ.get("SHOAL_FUZZ_RUNS", "3000"))
"""Inputs per target in the quick mode: each target's share of CI is a few seconds."""
ADMIN_RUNS: Final = int(os.environ.get("SHOAL_FUZZ_ADMIN_RUNS", str(max(RUNS // 10, 200))))
"""The admin target answers over HTTP from a live broker: ~1 ms an input, not ~50 µs."""
INPUT_TIMEOUT_S: Final = 20
"""libFuzzer's per-input limit: far above any input's time, so only a hang reaches it."""
RSS_LIMIT_MB: Final = 2048
"""A decoder that sizes memory from a forged count blows through this; honest inputs use <300."""
PROCESS_TIMEOUT_S: Final = 3000
"""A last resort for the whole run: the full mode takes minutes per target."""
FUZZED: Final = [t for t in TARGETS if t != "planted"]
SEED: Final = int(os.environ.get("SHOAL_FUZZ_SEED") or random.randrange(1, 1 << 31))
"""libFuzzer's seed: a new one each run (CI explores further every time), named in any failure
so that ``SHOAL_FUZZ_SEED=... make fuzz`` replays it."""


def run_target(target: str, runs: int, work: Path) -> subprocess.CompletedProcess[str]:
    new_inputs = work / "new"
    new_inputs.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "tests.fuzz.runner",
        target,
        f"-runs={runs}",
        f"-seed={SEED}",
        f"-timeout={INPUT_TIMEOUT_S}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-artifact_prefix={work}/",
        "-print_final_stats=1",
        str(new_inputs),
        str(HERE / "corpus" / target),
    ]
    found = HERE / "regressions" / target
    if found.is_dir():
        # libFuzzer runs every corpus input once before mutating: the crashes found before
        # are replayed first, so a fix that regresses fails here.
        command.append(str(found))
    # One stream: atheris prints the uncaught exception on stdout, libFuzzer its report on
    # stderr, and the failure message needs both in order.
    return subprocess.run(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
        check=False,
    )


@pytest.mark.parametrize("target", FUZZED)
def test_fuzz_target_finds_no_crash(target: str, tmp_path: Path) -> None:
    runs = ADMIN_RUNS if target == "admin" else RUNS
    result = run_target(target, runs, tmp_path)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert result.returncode == 0 and not crashes, (
        f"{target}: exit {result.returncode}, saved {crashes}, SHOAL_FUZZ_SEED={SEED}\n"
        f"{result.stdout[-4000:]}"
    )
    assert f"Done {runs} runs" in result.stdout, result.stdout[-2000:]
    print(f"fuzz {target}: {runs} inputs, 0 crashes")  # the quick-mode figure for the README


def test_the_harness_reports_a_planted_crash(tmp_path: Path) -> None:
    """The planted target raises IndexError on its committed seed: a harness that ran targets
    without reporting failures would pass every test above, so prove that it reports one."""
    result = run_target("planted", 100, tmp_path)
    assert result.returncode != 0
    assert "planted: the fuzz harness must report this" in result.stdout
    assert any(p.name.startswith("crash-") for p in tmp_path.iterdir())
