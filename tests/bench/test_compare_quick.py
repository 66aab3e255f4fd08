"""bench/compare.py --quick still runs against every system and writes complete results.

This is how CI keeps the comparison bench working: it runs the quick mode in a subprocess (real
servers, real clients) and checks that the JSON holds every system, size and workload with
positive figures, and that the markdown and the chart were written. It asserts nothing about
speed: which system is faster is the bench's business, not a test's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(540)]

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = {
    "shoal",
    "kafka",
    "kafka_flush1",
    "redis",
    "rabbitmq",
    "nats",
    "shoal_sasl_ssl",
    "kafka_sasl_ssl",
}
SECURED = {"shoal_sasl_ssl", "kafka_sasl_ssl"}
"""Throughput only: their latency runs would need the paced sender to log in."""


def test_quick_comparison_covers_every_system_and_workload(tmp_path: Path) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compare.py"), "--quick",
         "--out", str(out), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=520,
        cwd=ROOT,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"

    results = json.loads((out / "compare.json").read_text())
    assert set(results["systems"]) == SYSTEMS
    sizes = results["config"]["sizes"]
    rates = results["config"]["rates"]
    assert sizes and rates
    for name, entry in results["systems"].items():
        assert entry["durability"], name
        for size in sizes:
            cell = entry["results"][f"{size}B"]
            for workload in ("produce", "consume"):
                assert cell[workload]["records_per_s"]["median"] > 0, (name, size, workload)
                assert all(r["records"] > 0 for r in cell[workload]["runs"]), (name, workload)
            # Consumers read back exactly what producers had acknowledged.
            produced = [r["records"] for r in cell["produce"]["runs"]]
            assert [r["records"] for r in cell["consume"]["runs"]] == produced, name
            for rate in () if name in SECURED else rates:
                latency = cell[f"latency_{rate}"]
                assert latency["sent"] > 0 and latency["received"] > 0, (name, rate)
                assert latency["received"] <= latency["sent"], (name, rate)
                assert all(latency["latency_ms"][q] > 0 for q in ("p50", "p99", "p99.9"))
            assert cell["client_alone"]["records_per_s"] > 0, name

    markdown = (out / "compare.md").read_text()
    assert all(name in markdown for name in SYSTEMS)
    assert "shoal / peer" in markdown
    png = (out / "compare.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
