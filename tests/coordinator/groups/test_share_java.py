"""KIP-932 share groups with Apache Kafka 4.4's own KafkaShareConsumer against shoal.

java/ShareProbe.java (compiled here with javac against the peer's jars) runs two share
consumers of one group on a one-partition topic: both get records of the same partition, a
RELEASE comes back with delivery count 2, ACCEPT and REJECT are final, and a record left
unacknowledged by a consumer that stops polling comes back to the other once its lock
(``group_share_record_lock_duration_ms``) times out.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from shoal.embedded import EmbeddedBroker
from tests.peers.kafka_peer import LIBS, kafka_tool, tool_jvm_options

pytestmark = pytest.mark.integration

LOCK_MS = 2_000
PROBE = Path(__file__).parent / "java" / "ShareProbe.java"
SHARE_GROUPS = "org.apache.kafka.tools.consumer.group.ShareGroupCommand"


def _deliveries(out: str) -> list[tuple[str, str, int]]:
    """(consumer, key, delivery count) of each DELIVERED line, warm-up records left out."""
    rows = []
    for line in out.splitlines():
        if line.startswith("DELIVERED "):
            _, consumer, key, count, _offset = line.split()
            if key != "warm":
                rows.append((consumer, key, int(count)))
    return rows


def test_java_share_consumers_release_reject_and_lock_timeout(
    shoal_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path
) -> None:
    broker = shoal_broker_factory(share_version=1, group_share_record_lock_duration_ms=LOCK_MS)
    topic, group = "share-java", "share-java-group"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    classes = tmp_path / "classes"
    subprocess.run(
        ["javac", "-cp", f"{LIBS}/*", "-d", str(classes), str(PROBE)], check=True, timeout=120
    )
    run = subprocess.run(
        [
            "java",
            *tool_jvm_options(),
            "-cp",
            f"{classes}:{LIBS}/*",
            "ShareProbe",
            broker.bootstrap_servers,
            topic,
            group,
            str(LOCK_MS),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "WARMED" in run.stdout  # both consumers got records of the one partition
    rows = _deliveries(run.stdout)
    by_key: dict[str, list[tuple[str, int]]] = {}
    for consumer, key, count in rows:
        by_key.setdefault(key, []).append((consumer, count))
    assert [c for _, c in by_key["accept"]] == [1]
    assert [c for _, c in by_key["reject"]] == [1]  # archived: never again
    assert [c for _, c in by_key["release"]] == [1, 2]
    # The stuck consumer stops polling; its lock times out and the other one gets it.
    (first, one), (second, two) = by_key["stuck"]
    assert (one, two) == (1, 2) and first != second
    assert "ACCEPTED {accept=1, release=1, stuck=1}" in run.stdout

    # The stuck consumer's JVM exited without leaving: it is still a member, and the simple
    # assignor gives it the partition (ShareGroupDescribe).
    described = kafka_tool(
        SHARE_GROUPS,
        "--bootstrap-server",
        broker.bootstrap_servers,
        "--describe",
        "--group",
        group,
        "--members",
    )
    assert described.returncode == 0, described.stderr
    assert f"{topic}:0" in described.stdout, described.stdout
    listed = kafka_tool(SHARE_GROUPS, "--bootstrap-server", broker.bootstrap_servers, "--list")
    assert group in listed.stdout.split(), listed.stdout + listed.stderr
