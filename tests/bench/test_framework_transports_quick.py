"""bench/framework_transports.py --quick still runs on every transport and writes whole results.

This is how CI keeps the bench working: it runs the quick mode in a subprocess (real RabbitMQ,
Redis and NATS servers, the real clients, the real App) and checks that the JSON holds every
transport with positive consume and publish figures, and that the markdown table was written.
It asserts nothing about speed: how the framework compares with a raw client is the bench's
business, not a test's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = {"amqp", "redis", "redis_everysec", "nats"}
PUBLISH_MODES = {"sequential", "window_50"}
"""--quick publishes in gather windows of 50."""


def _positive(cell: dict[str, float]) -> bool:
    return all(cell[k] > 0 for k in ("median", "min", "max"))


def test_quick_run_covers_every_transport(tmp_path: Path) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "framework_transports.py"), "--quick",
         "--out", str(out), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=450,
        cwd=ROOT,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"

    results = json.loads((out / "framework_transports.json").read_text())
    assert set(results["systems"]) == SYSTEMS
    for name, entry in results["systems"].items():
        assert entry["durability"], name
        consume = entry["consume"]
        assert _positive(consume["raw_msgs_per_s"]), name
        assert _positive(consume["framework_msgs_per_s"]), name
        assert consume["ratio"] > 0, name
        assert set(entry["publish"]) == PUBLISH_MODES, name
        for mode, cell in entry["publish"].items():
            assert _positive(cell["raw_msgs_per_s"]), (name, mode)
            assert _positive(cell["framework_msgs_per_s"]), (name, mode)
    # The App's double acks on JetStream are measured against a raw loop doing the same.
    assert _positive(results["systems"]["nats"]["consume"]["raw_ack_sync_msgs_per_s"])

    markdown = (out / "framework_transports.md").read_text()
    assert all(f"| {name} |" in markdown for name in SYSTEMS)
    assert "framework / raw" in markdown
