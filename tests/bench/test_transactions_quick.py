"""bench/transactions.py --quick still runs against shoal and Apache Kafka and writes complete
results.

CI keeps the transactions bench working this way: the quick mode runs in a subprocess (real
brokers, real clients: confluent-kafka transactions and the App with exactly_once=True), against
the session's Kafka peer and a shoal broker of its own, and the test checks the shape of the
JSON and the markdown: both systems, every workload with positive figures, every transaction
committed, every framework record handled. It asserts nothing about speed: that is the bench's
business, not a test's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.kafka_peer import KafkaPeer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = {
    "produce_plain",
    "produce_transactional",
    "framework_at_least_once",
    "framework_exactly_once",
}


def test_quick_transactions_bench_covers_both_systems_and_every_workload(
    tmp_path: Path, kafka_peer: KafkaPeer
) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "transactions.py"), "--quick",
         "--out", str(out), "--dir", str(tmp_path),
         "--kafka-bootstrap", kafka_peer.bootstrap_servers],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=ROOT,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"

    results = json.loads((out / "transactions.json").read_text())
    cfg = results["config"]
    assert set(results["systems"]) == {"shoal", "kafka"} and not results["failed"]
    for name, entry in results["systems"].items():
        assert entry["durability"] and entry["client"], name
        assert set(entry["results"]) == WORKLOADS, name
        for workload, cell in entry["results"].items():
            assert len(cell["runs"]) == cfg["repeats"], (name, workload)
            assert cell["records_per_s"]["median"] > 0, (name, workload)
        for txn in entry["results"]["produce_transactional"]["runs"]:
            assert txn["transactions"] == cfg["transactions"], name
            assert txn["records"] == cfg["transactions"] * cfg["records_per_transaction"]
        for mode in ("framework_at_least_once", "framework_exactly_once"):
            for app_run in entry["results"][mode]["runs"]:
                assert app_run["handled"] >= app_run["records"] == cfg["eos_records"], name

    markdown = (out / "transactions.md").read_text()
    assert "| workload | shoal / kafka |" in markdown
    assert "| produce, transactions of 1,000 records | " in markdown
    assert "App subscriber, exactly_once=True" in markdown
    assert "n/a" not in markdown  # every ratio computed
