"""The move from shoal to the 3-broker Kafka cluster, with an app in the middle of its work
(issue 21, must-show 2): an idempotent framework app consumes part of a topic on a ``shoal
broker`` and stops; MirrorMaker 2, configured as docs/migrating-to-kafka.md says, copies the
topic and the group's committed offsets to the cluster; the same app, pointed at the cluster,
finishes the topic. Every record's effect is applied exactly once across the move: MM2
translates offsets conservatively, so some records are delivered again on the cluster, and the
idempotency store (whose file moves with the app) skips them. Nothing is lost.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.peers.kafka_apps import JvmApp, mirror_maker_classpath
from tests.peers.kafka_cluster import KafkaCluster
from tests.support.broker import BrokerProcess

# Outside CI's quick mode (`make cluster-migrate` sets SHOAL_CLUSTER_MIGRATION=1) for its cost:
# MirrorMaker is a fourth JVM, about 26 s of test time on the loaded 2-core machine (the cluster
# is the package's). It used to wait minutes for offsets MM2 could never translate (see the
# test's comment); in the doc's order it passed 3 runs of 3.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(480),
    pytest.mark.skipif(
        not os.environ.get("SHOAL_CLUSTER_MIGRATION"),
        reason="the full migration run: make cluster-migrate",
    ),
]

TOPIC = "ledger"
GROUP = "ledger-app"
PARTITIONS = 3
RECORDS = 300
BEFORE_MOVE = 90
"""Records written (and applied) on shoal before the app moves; the rest are written after."""
WAIT_S = 240.0
"""MirrorMaker's start, its first topic and group refresh, the copy and a checkpoint."""


def mm2_properties(shoal: str, kafka: str) -> str:
    """docs/migrating-to-kafka.md's configuration, with the test's addresses, intervals of a
    second instead of minutes, and MirrorMaker's Connect topics sized per cluster."""
    return f"""\
clusters = shoal, kafka
shoal.bootstrap.servers = {shoal}
kafka.bootstrap.servers = {kafka}
shoal->kafka.enabled = true
kafka->shoal.enabled = false
shoal->kafka.topics = {TOPIC}
shoal->kafka.groups = {GROUP}
replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy
sync.group.offsets.enabled = true
sync.group.offsets.interval.seconds = 1
emit.checkpoints.interval.seconds = 1
sync.topic.acls.enabled = false
offset-syncs.topic.replication.factor = 1
shoal->kafka.replication.factor = 3
shoal->kafka.checkpoints.topic.replication.factor = 3
shoal->kafka.heartbeats.topic.replication.factor = 3
# MirrorMaker's own Connect topics exist on both clusters: one replica on shoal, three on Kafka.
replication.factor = 1
checkpoints.topic.replication.factor = 1
heartbeats.topic.replication.factor = 1
offset.storage.replication.factor = 1
status.storage.replication.factor = 1
config.storage.replication.factor = 1
kafka.offset.storage.replication.factor = 3
kafka.status.storage.replication.factor = 3
kafka.config.storage.replication.factor = 3
refresh.topics.interval.seconds = 1
refresh.groups.interval.seconds = 1
offset.lag.max = 0
"""


MM2_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = %d{HH:mm:ss.SSS} %-5p %c{1} %m%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.mirror.name = org.apache.kafka.connect.mirror
logger.mirror.level = info
"""
"""MirrorMaker's own lines in mm2.log (without a configuration log4j2 prints only errors): the
checkpoint task's start says whether it loaded its checkpoints and how it read the offset syncs,
which decides whether it can translate offsets mirrored before it started."""


def effects(db: Path) -> list[int]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return [n for (n,) in conn.execute("SELECT n FROM effects")]
    except sqlite3.OperationalError:
        return []


APP = textwrap.dedent(
    """
    import os
    from shoal import App, Message

    app = App(f"kafka://{os.environ['BOOTSTRAP']}?session.timeout.ms=6000", name="ledger")

    @app.subscriber(os.environ["TOPIC"], group=os.environ["GROUP"], idempotent=True)
    async def apply(entry: dict, msg: Message) -> None:
        # The effect, in the idempotency store's transaction: with its dedup row or not at all.
        msg.transaction.execute("CREATE TABLE IF NOT EXISTS effects (n INTEGER)")
        msg.transaction.execute("INSERT INTO effects VALUES (?)", (entry["n"],))

    if __name__ == "__main__":
        app.run()
    """
)


def run_app(workdir: Path, bootstrap: str, until: Callable[[], bool]) -> None:
    """The service in its own process, from ``workdir`` (where its idempotency store is), until
    ``until``; then SIGTERM, which finishes and commits what is in flight."""
    script = workdir / "ledger_app.py"
    script.write_text(APP)
    env = {**os.environ, "BOOTSTRAP": bootstrap, "TOPIC": TOPIC, "GROUP": GROUP}
    log = workdir / "app.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(script)], cwd=workdir, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + WAIT_S
        while not until():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT_S)


def committed_on(bootstrap: str) -> dict[int, int]:
    """The group's committed offsets, read without joining it (OffsetFetch only)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "log_level": 0})
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        return {
            tp.partition: tp.offset
            for tp in consumer.committed(partitions, timeout=10)
            if tp.offset >= 0 and tp.error is None
        }
    except KafkaException:
        return {}  # not there yet (the topic, on Kafka before MirrorMaker made it)
    finally:
        consumer.close()


def end_offsets(bootstrap: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ends", "log_level": 0})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
            for p in range(PARTITIONS)
        }
    except KafkaException:
        return {}  # not there yet (the topic, on Kafka before MirrorMaker made it)
    finally:
        consumer.close()


def produce(bootstrap: str, numbers: range) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for n in numbers:
        producer.produce(
            TOPIC, f'{{"n": {n}}}'.encode(), str(n).encode(),
            headers=[("shoal.message-id", f"entry-{n}")],
        )  # fmt: skip
    assert producer.flush(30) == 0


def wait_for(condition: Callable[[], bool], mirror: JvmApp, what: Callable[[], object]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert mirror.alive(), mirror.tail()
        assert time.monotonic() < deadline, (what(), mirror.tail())
        time.sleep(0.5)


def test_an_app_moves_from_shoal_to_the_cluster_exactly_once(
    broker_process: Callable[..., BrokerProcess], healthy_cluster: KafkaCluster, tmp_path: Path
) -> None:
    db = tmp_path / "shoal-idempotency.db"  # the app's idempotency store, which moves with it
    shoal, kafka = broker_process().bootstrap_servers, healthy_cluster.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": shoal})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS)])[TOPIC].result(10)
    produce(shoal, range(BEFORE_MOVE))

    # In docs/migrating-to-kafka.md's order: MirrorMaker runs while the app works on shoal.
    # MM2 translates a committed offset from the offset syncs at or before it, and a backlog
    # copied in one burst keeps only its last sync per partition (MirrorSourceTask has at most
    # 10 syncs in flight and replaces a partition's pending sync with the newer one): an app
    # stopped inside such a backlog before MM2 started was never translated (issue 21's
    # closing note). Here the app's last commit is at or past the syncs MM2 wrote.
    properties = tmp_path / "mm2.properties"
    properties.write_text(mm2_properties(shoal, kafka))
    log_config = tmp_path / "mm2-log4j2.properties"
    log_config.write_text(MM2_LOG4J2)
    mirror = JvmApp(
        mirror_maker_classpath(),
        "org.apache.kafka.connect.mirror.MirrorMaker",
        str(properties),
        log_path=tmp_path / "mm2.log",
        jvm_options=(f"-Dlog4j2.configurationFile={log_config}",),
    ).start()
    try:
        run_app(tmp_path, shoal, lambda: len(effects(db)) >= BEFORE_MOVE)
        moved_at = len(effects(db))
        on_shoal = committed_on(shoal)
        # The consumers move first: every partition the group committed on shoal has a
        # translated offset on Kafka (MM2 writes it while the group has no members there).
        wait_for(
            lambda: set(committed_on(kafka)) >= set(on_shoal),
            mirror,
            lambda: (committed_on(kafka), on_shoal),
        )
        translated = committed_on(kafka)
        # Then the producers: what they wrote on shoal meanwhile is copied before MM2 stops.
        produce(shoal, range(BEFORE_MOVE, RECORDS))
        ends = end_offsets(shoal)
        wait_for(lambda: end_offsets(kafka) == ends, mirror, lambda: (end_offsets(kafka), ends))
    finally:
        mirror.stop()  # the group is the app's now
    # Conservative translation: never past what the group had done on shoal.
    assert all(translated[p] <= on_shoal[p] for p in translated), (translated, on_shoal)
    assert moved_at < RECORDS, "the move must happen mid-topic"

    run_app(tmp_path, kafka, lambda: len(set(effects(db))) >= RECORDS)
    applied = effects(db)
    print(
        f"\nmigration: records={RECORDS} applied-on-shoal={moved_at} "
        f"re-read-on-kafka={sum(on_shoal.values()) - sum(translated.values())} "
        f"applied={len(applied)} lost={RECORDS - len(set(applied))} "
        f"duplicated={len(applied) - len(set(applied))}"
    )
    assert sorted(applied) == list(range(RECORDS))  # each effect once: none lost, none twice
