"""bench/metrics_scrape.py --quick runs end to end and writes complete figures (CI keeps the
bench working this way). It asserts nothing about speed: that is the bench's business."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


def test_quick_metrics_bench_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "metrics_scrape.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "metrics_scrape.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(out.read_text())
    assert figures["partitions"] == 20 and figures["groups"] == 3
    assert len(figures["scrape_ms"]) == 3 and all(ms > 0 for ms in figures["scrape_ms"])
    assert figures["exposition_lines"] > 0
    assert figures["plain_records_per_s"][0] > 0 and figures["scraped_records_per_s"][0] > 0
    assert "scrape time: median" in run.stdout
