"""Tables restored from their changelog on a real broker: a processor SIGKILLed mid-fetch and
restarted, and a second instance taking a partition over, end with exactly the state (and the
window results) that one uninterrupted pass over the same records gives."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from shoal.app.message import Message
from shoal.app.streams import WindowedAggregator
from shoal.app.transports.kafka import KafkaTransport
from shoal.embedded import EmbeddedBroker
from tests.app.streams.tick_processor import (
    IDS,
    LATENESS_MS,
    SESSION_TIMEOUT_MS,
    WINDOW_MS,
    stores,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
WAIT_S_MAX = 90.0
"""A hang guard, not a timing expectation."""
PARTITIONS = 2


@pytest.fixture
def feeds(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Any]:
    """``feeds(prefix)``: a Feed whose processes are all gone when the test ends."""
    made: list[Feed] = []

    def make(prefix: str) -> Feed:
        made.append(Feed(broker.bootstrap_servers, prefix, tmp_path))
        return made[-1]

    yield make
    for feed in made:
        feed.kill_all()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    # No initial rebalance delay (3 s for each empty group joined) and a minimum session
    # timeout below the processors' (a killed member is then noticed in 2 s, not 6).
    with EmbeddedBroker(
        str(tmp_path_factory.mktemp("streams-broker")),
        group_initial_rebalance_delay_ms=0,
        group_min_session_timeout_ms=SESSION_TIMEOUT_MS // 2,
    ) as running:
        yield running


def _ticks(seed: int, count: int) -> list[dict[str, Any]]:
    """Event times rising 5 ms a tick, jittered out of order, with a few very late ticks."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        ts = 1_000 + i * 5 + rng.randint(0, 60)
        if rng.random() < 0.05:
            ts -= rng.randint(100, 400)  # late beyond the allowed lateness
        out.append({"id": i, "k": rng.choice("ABCDEF"), "ts": ts})
    return out


class Feed:
    def __init__(self, bootstrap: str, prefix: str, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[str]] = []
        self.bootstrap = bootstrap
        self.prefix = prefix
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topic = NewTopic(f"{prefix}.ticks", num_partitions=PARTITIONS, replication_factor=1)
        for future in admin.create_topics([topic]).values():
            future.result(30)
        self.producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})

    def send(self, ticks: list[dict[str, Any]]) -> None:
        for tick in ticks:
            self.producer.produce(f"{self.prefix}.ticks", json.dumps(tick), tick["k"])
        assert self.producer.flush(30) == 0

    def start(
        self,
        name: str,
        *,
        slow: bool,
        hang_after: int | None = None,
        exactly_once: bool = False,
    ) -> tuple[subprocess.Popen[str], Path]:
        log = self.logs / f"{self.prefix}-{name}.log"
        args = [sys.executable, "-m", "tests.app.streams.tick_processor", self.bootstrap]
        args += [self.prefix, "--log", str(log), *(["--slow"] if slow else [])]
        if hang_after is not None:
            args += ["--hang-before-commit-after", str(hang_after)]
        if exactly_once:
            args.append("--exactly-once")
        proc = subprocess.Popen(
            args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.started.append(proc)
        return proc, log

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=WAIT_S_MAX)

    def committed(self) -> dict[int, int]:
        consumer = confluent_kafka.Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": f"{self.prefix}.group"}
        )
        try:
            tps = [
                confluent_kafka.TopicPartition(f"{self.prefix}.ticks", p) for p in range(PARTITIONS)
            ]
            return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        finally:
            consumer.close()

    def wait(self, done: Any, what: str) -> None:
        deadline = time.monotonic() + WAIT_S_MAX
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def wait_all_committed(self, count: int) -> None:
        self.wait(lambda: sum(max(o, 0) for o in self.committed().values()) >= count, "commits")

    def read(self, topic: str) -> list[Message]:
        async def read() -> list[Message]:
            transport = KafkaTransport(self.bootstrap)
            return await transport.read_topic(topic)

        return asyncio.run(read())


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=WAIT_S_MAX)
    assert proc.returncode == 0, err


def _restored(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if "restored" in line]


def _check_exact(feed: Feed, *, outputs_once: bool = False) -> None:
    """State and outputs equal one pass over each partition's records in offset order."""
    source = feed.read(f"{feed.prefix}.ticks")
    expected_closed: dict[tuple[str, int], list[int]] = {}
    expected_late: set[int] = set()
    aggregators: dict[int, WindowedAggregator[int, list[int]]] = {}
    for msg in source:  # offset order per partition; partitions are independent
        tick = json.loads(msg.value)
        agg = aggregators.setdefault(
            msg.partition, WindowedAggregator(stores("x")[0].windows, IDS, allowed_lateness_ms=50)
        )
        step = agg.add(tick["k"], tick["ts"], tick["id"])
        expected_closed.update({(r.key, r.window.start_ms): r.value for r in step.closed})
        if step.late:
            expected_late.add(tick["id"])
    assert expected_late, "the feed should have late ticks"

    emitted: dict[tuple[str, int], list[int]] = {}
    for msg in feed.read(f"{feed.prefix}.windows"):
        key, start, end, ids = json.loads(msg.value)
        assert end - start == WINDOW_MS
        if outputs_once:  # exactly-once: not even an identical repeat
            assert (key, start) not in emitted, f"window {key}@{start} published twice"
        # A replay may send a window again: only ever with the same content.
        assert emitted.setdefault((key, start), ids) == ids, f"window {key}@{start} differs"
    assert emitted == expected_closed
    late = {json.loads(m.value)["id"] for m in feed.read(f"{feed.prefix}.late")}
    assert late == expected_late

    windows, counts = stores(feed.prefix)
    windows.restore(feed.read(windows.changelog), set(range(PARTITIONS)))
    counts.restore(feed.read(counts.changelog), set(range(PARTITIONS)))
    assert dict(counts.items()) == dict(Counter(json.loads(m.value)["k"] for m in source))
    for key in "ABCDEF":
        partition = next(m.partition for m in source if m.key == key.encode())
        assert windows.open_windows(key) == aggregators[partition].open_windows(key)
    for partition, agg in aggregators.items():
        assert windows.watermark_ms(partition) == agg.watermark_ms
    assert LATENESS_MS == 50


def test_a_killed_processor_restarts_with_the_exact_state(feeds: Any) -> None:
    """Killed in the worst place: a fetch's state is in the changelog but its offsets are not
    committed, so the restarted processor reads those records again and must not count them
    twice. (A crash at any other point, with any part of a fetch's writes durable, is covered
    without a broker by test_store_replay.py.)"""
    feed = feeds("kill")
    ticks = _ticks(seed=1, count=600)
    feed.send(ticks[:250])
    first, log = feed.start("first", slow=False, hang_after=100)
    hang = Path(f"{log}.hang")
    feed.wait(hang.exists, "the processor to hang before a commit")
    first.kill()
    first.communicate(timeout=WAIT_S_MAX)

    second, log = feed.start("second", slow=False)
    feed.send(ticks[250:])
    feed.wait_all_committed(len(ticks))
    _stop(second)
    assert _restored(log)
    _check_exact(feed)
    second_log = log.read_text()
    # The replay after the first kill really met records whose effect was already stored.
    assert "a replayed record skipped" in second_log


def test_a_second_instance_takes_a_partition_over_from_the_changelog(feeds: Any) -> None:
    """Exactly-once processors (transactional fetches): besides the exact state, every window
    is published once, across the rebalance that fences the first instance's fetch."""
    feed = feeds("takeover")
    ticks = _ticks(seed=2, count=500)
    feed.send(ticks[:250])
    first, _ = feed.start("first", slow=True, exactly_once=True)
    feed.wait(lambda: sum(max(o, 0) for o in feed.committed().values()) >= 250, "first pass")
    second, log = feed.start("second", slow=True, exactly_once=True)
    # The newcomer is handed one of the two partitions and restores it from the changelog,
    # which by then holds the first instance's state of it.
    feed.wait(lambda: bool(_restored(log)), "the second instance's restore")
    assert "takeover.ticks partitions [0]" in log.read_text() or "partitions [1]" in log.read_text()
    feed.send(ticks[250:])
    feed.wait_all_committed(len(ticks))
    _stop(second)
    _stop(first)
    _check_exact(feed, outputs_once=True)
