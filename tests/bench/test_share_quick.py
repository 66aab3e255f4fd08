"""bench/share.py --quick still runs against shoal, Apache Kafka and RabbitMQ and writes
complete results.

CI keeps the share-group bench working this way: the quick mode runs in a subprocess (real
servers, real clients, a child process per consumer), against the session's Kafka and RabbitMQ
peers (started once for the whole test session) and a shoal broker of its own, and the test
checks the shape of the JSON and the markdown: every system and consumer count, positive
figures, every record acknowledged, every given-back record delivered again with a delivery
count above 1. It asserts nothing about speed: that is the bench's business, not a test's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.kafka_peer import KafkaPeer
from tests.peers.servers import RabbitServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = {"shoal", "kafka", "rabbitmq"}


def test_quick_share_bench_covers_every_system_and_consumer_count(
    tmp_path: Path, kafka_peer: KafkaPeer, rabbitmq_server: RabbitServer
) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "share.py"), "--quick",
         "--out", str(out), "--dir", str(tmp_path),
         "--kafka-bootstrap", kafka_peer.bootstrap_servers,
         "--rabbitmq-url", rabbitmq_server.url],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=ROOT,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"

    results = json.loads((out / "share.json").read_text())
    assert set(results["systems"]) == SYSTEMS and not results["failed"]
    counts = results["config"]["consumers"]
    assert len(counts) >= 2 and 1 in counts
    for name, entry in results["systems"].items():
        assert entry["durability"] and entry["client"], name
        for consumers in counts:
            cell = entry["results"][f"consumers_{consumers}"]
            assert cell["records_per_s"]["median"] > 0, (name, consumers)
            for run_ in cell["runs"]:
                assert run_["consumers"] == consumers
                assert len(run_["accepted_by_consumer"]) == consumers
                assert run_["accepted"] >= run_["records"], (name, consumers)
                # Every record given back came back, counted as a later delivery.
                assert run_["released"] > 0, (name, consumers)
                assert run_["redelivered"] == run_["released"], (name, consumers)
                assert run_["max_delivery_count"] >= 2, (name, consumers)
                assert run_["client_cpu_fraction_max"] > 0, (name, consumers)
            redelivery = cell["redelivery_ms"]
            assert 0 < redelivery["p50"] <= redelivery["p99"], (name, consumers)

    markdown = (out / "share.md").read_text()
    assert "| shoal / kafka | shoal / rabbitmq |" in markdown
    for consumers in counts:
        assert f"consume+ack records/s, {consumers} consumers" in markdown
