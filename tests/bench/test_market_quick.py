"""bench/market.py --smoke still runs its processes against a `shoal broker` and writes
complete results.

The smoke mode starts a shoal broker, then for a paced rate and an unpaced run: the quote and
bar services, each a process of its own, and the feed in a third; the test checks the shape
of the JSON: every event sent was handled by each service that reads it, each stage has
latency samples, the chart was drawn. It asserts nothing about speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_market_bench_runs_every_process_and_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "market.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=580,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    results = json.loads((out / "market.json").read_text())
    rows = results["systems"]["shoal"]
    assert [r["rate_asked"] for r in rows] == [500, None]  # paced, then the throughput run
    for row in rows:
        events = row["events"]
        assert events > 0 and row["rate_reached"] > 0
        services = row["services"]
        assert set(services) == {"quotes", "bars"}
        # The quote service reads trades and quotes; the bar service trades only.
        assert services["quotes"]["handled"] == events
        assert 0 < row["trades"] < events
        assert services["bars"]["handled"] == row["trades"]
        for stage in ("quote -> broker ack", "quote -> table", "trade -> join", "trade -> bars"):
            fig = row["stages"][stage]
            assert fig["count"] > 0 and fig["p50"] <= fig["p99"] <= fig["p99.9"], stage
            # The unpaced run sends events ahead of their exchange times (as fast as it can,
            # not when they are due): on a quiet machine its acknowledgements arrive before
            # them, so only the paced run's latencies are never negative.
            assert row["rate_asked"] is None or fig["p50"] >= 0, stage
    assert rows[0]["timeline"]  # the chart's series
    assert (out / "market.png").stat().st_size > 0
