"""Compaction on a running broker, seen by a real client (confluent-kafka).

A topic with cleanup.policy=compact, segment.ms=100 (so segments roll while producing) and
min.cleanable.dirty.ratio=0.01: the broker's cleaner thread (back-off 50 ms) compacts it, and a
consumer reading from the beginning then sees one record per key below the active segment, the
latest, at its original offset; the cleaner's metrics say so too, and so do /metrics and
``shoal topic describe`` (the dirty ratio).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections.abc import Callable

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from shoal.cli import main
from shoal.embedded import EmbeddedBroker

WAIT_S = 30.0
"""Bound on waiting for the cleaner thread (it usually takes well under a second)."""


def _consume_up_to(
    bootstrap: str, topic: str, last_offset: int
) -> list[tuple[int, bytes | None, bytes | None]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-check"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen: list[tuple[int, bytes | None, bytes | None]] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while (not seen or seen[-1][0] < last_offset) and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            seen.append((message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    return seen


def test_the_cleaner_thread_compacts_a_topic_a_consumer_then_reads(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(log_cleaner_backoff_ms=50)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    configs = {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
    }
    admin.create_topics([NewTopic("changelog", 1, config=configs)])["changelog"].result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 0})
    for round_ in range(4):
        for key in range(5):
            producer.produce("changelog", key=f"k{key}".encode(), value=f"{round_}".encode())
        producer.flush(10)
        time.sleep(0.15)  # the next append rolls the segment (segment.ms=100)
    producer.produce("changelog", key=b"k0", value=b"last")
    producer.flush(10)

    cleaner = broker.app.logs.cleaner if broker.app.logs is not None else None
    assert cleaner is not None
    deadline = time.monotonic() + WAIT_S
    while cleaner.metrics.cleans == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cleaner.metrics.cleans >= 1
    assert cleaner.metrics.totals.bytes_read > 0
    assert cleaner.metrics.last_clean_time_ms > 0
    assert "changelog-0" in cleaner.metrics.dirty_ratio

    seen = _consume_up_to(broker.bootstrap_servers, "changelog", 20)
    offsets = [offset for offset, _, _ in seen]
    assert offsets == sorted(offsets) and len(offsets) < 21
    assert seen[-1] == (20, b"k0", b"last")
    # Every key's latest value is still there, at the offset it was produced at.
    latest = {key: (offset, value) for offset, key, value in seen}
    assert latest[b"k1"] == (16, b"3") and latest[b"k4"] == (19, b"3")

    # The dirty ratio reaches users as Kafka's cleaner state does, as a broker metric: a
    # gauge per partition on /metrics, which `shoal topic describe` reads and shows.
    scrape = httpx.get(f"{broker.http_url}/metrics", timeout=10).text
    gauge = re.search(
        r'^shoal_log_cleaner_dirty_ratio\{topic="changelog",partition="0"\} (\S+)$',
        scrape,
        re.MULTILINE,
    )
    assert gauge is not None, scrape
    assert re.search(r"^shoal_cleaner_runs_total [1-9]", scrape, re.MULTILINE)
    argv = ["topic", "describe", "changelog", "-b", broker.bootstrap_servers]
    code, out, err = _cli([*argv, "--http-url", broker.http_url, "--format", "json"])
    assert code == 0 and err == "", err
    (partition,) = json.loads(out)["partitions"]
    assert 0.0 <= partition["dirty_ratio"] <= 1.0
    code, out, err = _cli([*argv, "--http-url", broker.http_url])
    assert code == 0 and err == "", err
    assert re.search(r"\tPartition: 0\t.*\tDirtyRatio: \d\.\d\d$", out, re.MULTILINE), out
    # Without the HTTP face the rest is still described, and stderr says why the ratio is not.
    code, out, err = _cli([*argv, "--http-url", "http://127.0.0.1:9"])
    assert code == 0 and "DirtyRatio" not in out and "dirty ratio not shown" in err


def _cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``shoal`` in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()
