"""The loop every side-by-side bench runs: each system in turn, in its own work directory, with
one system's failure written beside the others' figures instead of throwing them away."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.peers.report import environment

Log = Callable[[str], None]
MeasureSystem = Callable[[str, Path, Log], dict[str, Any]]
"""(system name, its work directory, log) -> its entry in the results: durability, client and
results. It starts the system, measures it and stops it."""


def log(line: str) -> None:
    print(line, flush=True)


def run_systems(
    config: dict[str, Any],
    systems: list[str],
    work_base: Path,
    work_prefix: str,
    measure_system: MeasureSystem,
    failures: tuple[type[Exception], ...] = (Exception,),
) -> dict[str, Any]:
    """Measure each system in turn; the results hold the config, the machine (with the load
    average before and after), each system's entry and each failure (the run's caller exits
    non-zero when there is one)."""
    results: dict[str, Any] = {
        "config": config,
        "environment": environment(),
        "systems": {},
        "failed": {},
    }
    with tempfile.TemporaryDirectory(prefix=work_prefix, dir=work_base) as work:
        for name in systems:
            log(f"== {name}")
            try:
                results["systems"][name] = measure_system(name, Path(work) / name, log)
            except failures as exc:
                # One system failing must not throw away the others' figures; the run still
                # exits non-zero, and the failure is written beside the results.
                log(f"  FAILED: {exc!r}")
                results["failed"][name] = repr(exc)
    results["environment"]["load_average_after"] = os.getloadavg()
    return results


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
