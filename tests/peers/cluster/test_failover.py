"""A framework app and the standalone schema registry on a 3-broker Kafka cluster while one
broker is SIGKILLed and later restarted (issue 21).

The app (in its own process, as deployed) uses the resilience patterns together: a retry topic
for transient failures, a dead-letter queue for records that can never succeed, and the
idempotency store, whose dedup row commits in one SQLite transaction with the handler's effect.
The broker killed leads the registry's ``_schemas`` partition and is the app's group
coordinator (the group's name is chosen so that it is): the registry's reads and writes move to
a new leader, the group's offsets to a new coordinator, and commits in flight may be lost, so
records are delivered again. Pass: every record the producer saw acknowledged (acks=all,
min.insync.replicas=2) has its effect applied exactly once, or is in the DLQ if it was poison;
the app's readiness probe answered throughout (200, or 503 while a rebalance leaves a consumer
without partitions), every dip recovered, and it ends at 200; the registry answered every read
during the failure, accepts a write after it, and its ``_schemas`` topic has three replicas.

CI runs one kill; ``make cluster-soak`` runs several (SHOAL_CLUSTER_KILLS).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, ElectionType, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.cli.support import shoal_script
from tests.differential.test_java_txn_v2 import state_partition
from tests.peers.kafka_cluster import REPLICATION_FACTOR, KafkaCluster
from tests.peers.kafka_peer import free_port

KILLS = int(os.environ.get("SHOAL_CLUSTER_KILLS", "1"))
"""Kill-and-restart rounds: 1 in CI's quick mode, more with ``make cluster-soak``."""
# About 25 s per kill-and-restart round on the CI machine; the rest is start-up and catch-up.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300 + 60 * KILLS),
]
BATCH = 60
"""Records produced in each phase: before a kill, while a broker is down, after the restart."""
WAIT_S = 120.0
"""For the app to catch up, a node to come back, a server to answer: a hang fails the test."""
TOPIC = "failover-orders"
GROUP = "failover-orders-app"
SUBJECT = "orders-value"
FLAKY_EVERY = 10
"""Every 10th record fails on its first delivery (a timeout), and succeeds from the retry topic."""
POISON_EVERY = 25
"""Every 25th record fails on every delivery and ends in the DLQ."""

APP = textwrap.dedent(
    """
    import asyncio, os
    from shoal import App, Retry

    # A short session: after the coordinator moves, the group re-forms in seconds.
    app = App(f"kafka://{os.environ['BOOTSTRAP']}?session.timeout.ms=6000", name="orders-app")
    failed_once = set()

    @app.subscriber(
        os.environ["TOPIC"], group=os.environ["GROUP"], retry=Retry.with_topics(100),
        idempotent=True,
    )
    async def handle(order: dict, msg) -> None:
        n = order["n"]
        if order["kind"] == "poison":
            raise ValueError(f"order {n} can never be processed")
        if order["kind"] == "flaky" and n not in failed_once:
            failed_once.add(n)
            raise ConnectionError(f"order {n}: the payment service timed out")
        await asyncio.sleep(0.005)  # a little work, so that the kill lands mid-stream
        # The effect, in the idempotency store's transaction: applied with its dedup row or
        # not at all.
        msg.transaction.execute("CREATE TABLE IF NOT EXISTS effects (n INTEGER)")
        msg.transaction.execute("INSERT INTO effects VALUES (?)", (n,))

    if __name__ == "__main__":
        app.run(http_port=int(os.environ["HTTP_PORT"]))
    """
)

SCHEMA = {
    "type": "record",
    "name": "Order",
    "fields": [{"name": "n", "type": "int"}, {"name": "kind", "type": "string"}],
}


def kind_of(n: int) -> str:
    if n % POISON_EVERY == POISON_EVERY - 1:
        return "poison"
    return "flaky" if n % FLAKY_EVERY == FLAKY_EVERY - 1 else "plain"


def http(method: str, url: str, body: object | None = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


def wait_for(condition: Callable[[], bool], what: str, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert alive(), f"a process died while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@dataclass
class Ledger:
    """What the producer saw acknowledged; what the app applied; what reached the DLQ."""

    produced: int = 0
    acknowledged: set[int] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)

    def on_delivery(self, err: object, msg: object) -> None:
        if err is None:
            self.acknowledged.add(int(msg.key()))  # type: ignore[attr-defined]
        else:
            self.failed.append(str(err))


def produce_batch(producer: Producer, ledger: Ledger) -> None:
    for n in range(ledger.produced, ledger.produced + BATCH):
        producer.produce(
            TOPIC,
            json.dumps({"n": n, "kind": kind_of(n)}).encode(),
            str(n).encode(),
            headers=[("shoal.message-id", f"order-{n}")],
            on_delivery=ledger.on_delivery,
        )
    ledger.produced += BATCH
    assert producer.flush(WAIT_S) == 0, "records still unacknowledged"


def effects(db: Path) -> list[int]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return [n for (n,) in conn.execute("SELECT n FROM effects")]
    except sqlite3.OperationalError:
        return []  # the table does not exist yet, or the app holds the write lock


def dead_lettered(bootstrap: str) -> list[int]:
    """Every record of the DLQ, to the end of each partition (duplicates included)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "dlq-check", "log_level": 0})
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    partitions = [
        TopicPartition(f"{TOPIC}.dlq", p) for p in metadata.topics[f"{TOPIC}.dlq"].partitions
    ]
    total = 0
    for tp in partitions:
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        total += high - low
    consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions])
    found: list[int] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while len(found) < total and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append(json.loads(message.value())["n"])
    finally:
        consumer.close()
    return found


def coordinator_of(bootstrap: str, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(10)
    return int(description.coordinator.id)


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return int(metadata.topics[topic].partitions[partition].leader)


def group_coordinated_by(bootstrap: str, node_id: int) -> str:
    """A group name whose coordinator is ``node_id``: the leader of the ``__consumer_offsets``
    partition Kafka maps the name to (abs(hashCode) % partitions, as for transactional ids)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + WAIT_S
    while True:
        metadata = admin.list_topics("__consumer_offsets", timeout=10)
        partitions = metadata.topics["__consumer_offsets"].partitions
        if partitions and all(p.leader >= 0 for p in partitions.values()):
            break
        # A fresh cluster creates the topic on the first FindCoordinator request.
        with contextlib.suppress(Exception):
            admin.describe_consumer_groups([GROUP])[GROUP].result(10)
        assert time.monotonic() < deadline, "no __consumer_offsets topic with leaders"
        time.sleep(0.25)
    for n in range(1000):
        group = f"{GROUP}-{n}"
        if partitions[state_partition(group, len(partitions))].leader == node_id:
            return group
    raise AssertionError(f"no __consumer_offsets partition is led by node {node_id}")


class Poller:
    """GETs a URL every 0.25 s the whole time: the app's /readyz, so that a dip and its
    recovery are both seen; a registry read, so that every answer during the failure is."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.statuses.append(http("GET", self.url)[0])

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


@dataclass
class AppProcess:
    proc: subprocess.Popen[bytes]
    http_port: int
    db: Path
    """The idempotency store, which holds the effects too."""
    group: str
    """The app's group, coordinated by the ``_schemas`` leader when the app started."""

    def alive(self) -> bool:
        return self.proc.poll() is None


@pytest.fixture
def app_process(
    healthy_cluster: KafkaCluster, registry: str, tmp_path: Path
) -> Iterator[AppProcess]:
    """The app, started on the cluster after the registry (which creates ``_schemas``), in a
    group whose coordinator leads ``_schemas``: one kill hits both."""
    # The registry creates _schemas on its first write (the test registers the same schema
    # again: the same id).
    registered = http(
        "POST", f"{registry}/subjects/{SUBJECT}/versions", {"schema": json.dumps(SCHEMA)}
    )
    assert registered[0] == 200, registered
    # Leaders back on their preferred replicas (a node restarted by an earlier test leads
    # nothing until then): Kafka's periodic rebalancing of leaders then has nothing to move
    # between here and the kill. Partitions already there answer ELECTION_NOT_NEEDED: ignored.
    electing = AdminClient({"bootstrap.servers": healthy_cluster.bootstrap_servers})
    electing.elect_leaders(ElectionType.PREFERRED).result(30)  # the client must outlive it
    group = group_coordinated_by(
        healthy_cluster.bootstrap_servers,
        leader_of(healthy_cluster.bootstrap_servers, "_schemas", 0),
    )
    admin = AdminClient({"bootstrap.servers": healthy_cluster.bootstrap_servers})
    admin.create_topics([NewTopic(TOPIC, 3)])[TOPIC].result(30)  # the cluster's RF: 3
    script = tmp_path / "orders_app.py"
    script.write_text(APP)
    port = free_port()
    env = {
        **os.environ,
        "BOOTSTRAP": healthy_cluster.bootstrap_servers,
        "TOPIC": TOPIC,
        "GROUP": group,
        "HTTP_PORT": str(port),
    }
    log = tmp_path / "app.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(script)], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    try:
        wait_for(
            lambda: http("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200,
            "the app to be ready",
            lambda: proc.poll() is None,
        )
        yield AppProcess(proc, port, tmp_path / "shoal-idempotency.db", group)
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def registry(healthy_cluster: KafkaCluster, tmp_path: Path) -> Iterator[str]:
    """``shoal registry --bootstrap <cluster>``; yields its URL."""
    url = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                shoal_script(),
                "registry",
                "--bootstrap",
                healthy_cluster.bootstrap_servers,
                "--listen",
                url.removeprefix("http://"),
            ],
            stdout=out,
            stderr=out,
        )
    try:
        wait_for(
            lambda: http("GET", f"{url}/subjects")[0] == 200,
            "the registry",
            lambda: proc.poll() is None,
        )
        yield url
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        proc.terminate()
        proc.wait(30)


def test_app_and_registry_through_a_broker_kill(
    healthy_cluster: KafkaCluster, app_process: AppProcess, registry: str
) -> None:
    cluster = healthy_cluster
    bootstrap = cluster.bootstrap_servers
    http_port, db, alive = app_process.http_port, app_process.db, app_process.alive
    registered = http(
        "POST", f"{registry}/subjects/{SUBJECT}/versions", {"schema": json.dumps(SCHEMA)}
    )
    assert registered[0] == 200, registered
    schema_id = registered[1]["id"]  # type: ignore[index]
    schemas = AdminClient({"bootstrap.servers": bootstrap}).list_topics("_schemas", timeout=10)
    replicas = schemas.topics["_schemas"].partitions[0].replicas
    assert len(replicas) == REPLICATION_FACTOR, replicas

    ledger = Ledger()
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "log_level": 0,
        }
    )
    registry_reads: list[int] = []
    victims: list[tuple[int, int]] = []
    """(the node killed, which led ``_schemas``; the app's coordinator then) per round."""
    with (
        Poller(f"http://127.0.0.1:{http_port}/readyz") as readiness,
        Poller(f"{registry}/subjects/{SUBJECT}/versions/latest") as registry_poll,
    ):
        for _ in range(KILLS):
            produce_batch(producer, ledger)
            # Kill mid-stream: the app has applied some of what is there, not all.
            started = len(effects(db))
            wait_for(lambda s=started: len(effects(db)) > s, "the app to apply records", alive)
            victim = leader_of(bootstrap, "_schemas", 0)
            coordinator = coordinator_of(bootstrap, app_process.group)
            # Leadership may have moved since the app started (a restarted node takes its
            # partitions back): the registry's leader is the one this test must hit.
            victims.append((victim, coordinator))
            cluster.kill(victim)
            produce_batch(producer, ledger)  # acks=all on the two brokers left
            for path in (f"/subjects/{SUBJECT}/versions/latest", f"/schemas/ids/{schema_id}"):
                registry_reads.append(http("GET", registry + path)[0])
            cluster.restart(victim)
            cluster.wait_healthy(WAIT_S)
        produce_batch(producer, ledger)

        acknowledged = ledger.acknowledged
        good = {n for n in acknowledged if kind_of(n) != "poison"}
        poison = {n for n in acknowledged if kind_of(n) == "poison"}
        wait_for(lambda: set(effects(db)) >= good, "every acknowledged record's effect", alive)
        # A poison record reaches the DLQ after its retries, later than a good one's effect.
        wait_for(
            lambda: set(dead_lettered(bootstrap)) >= poison,
            "every acknowledged poison record in the DLQ",
            alive,
        )
        wait_for(
            lambda: http("GET", f"http://127.0.0.1:{http_port}/readyz")[0] == 200,
            "the app to be ready again",
            alive,
        )
    applied = effects(db)
    dlq = dead_lettered(bootstrap)
    lost = (good - set(applied)) | (poison - set(dlq))
    duplicated = len(applied) - len(set(applied))
    # Dead-lettering is at least once: a commit lost with the coordinator sends a poison record
    # through again. Counted, not failed: the DLQ's reader (a person, or redrive) sees it twice.
    dlq_duplicates = len(dlq) - len(set(dlq))
    # The figures the closing note quotes.
    print(
        f"\ncluster failover: kills={cluster.kills} acknowledged={len(acknowledged)} "
        f"consumed={len(applied)} dead-lettered={len(dlq)} lost={len(lost)} "
        f"duplicated={duplicated} dlq-duplicates={dlq_duplicates} "
        f"readiness-not-ready={readiness.statuses.count(503)}/{len(readiness.statuses)} "
        f"killed(schemas leader, coordinator)={victims}"
    )
    assert not ledger.failed, ledger.failed
    assert len(acknowledged) == ledger.produced
    assert lost == set()
    assert duplicated == 0
    assert set(applied) == good  # nothing applied that was not produced, poison never applied
    assert set(dlq) == poison
    assert registry_reads and all(status == 200 for status in registry_reads), registry_reads
    assert registry_poll.statuses and set(registry_poll.statuses) == {200}, registry_poll.statuses
    # The probe answered every time (0: no answer in 10 s; 500: the check itself failed): the
    # app kept serving, and said "not ready" only while a consumer had no partitions or the
    # broker did not answer its ping.
    assert readiness.statuses and set(readiness.statuses) <= {200, 503}, readiness.statuses
    dips = [i for i, status in enumerate(readiness.statuses) if status == 503]
    assert not dips or 200 in readiness.statuses[dips[-1] :], readiness.statuses  # recovered
    assert readiness.statuses[-1] == 200
    # The first kill hit the coordinator too (the group was chosen so); later rounds' victims
    # follow the _schemas leader wherever the restarts moved it.
    assert victims[0][0] == victims[0][1], victims
    # A write after the failure: the registry's producer found the new leaders.
    evolved = {
        **SCHEMA,
        "fields": [*SCHEMA["fields"], {"name": "note", "type": "string", "default": ""}],
    }  # type: ignore[list-item]
    assert (
        http("POST", f"{registry}/subjects/{SUBJECT}/versions", {"schema": json.dumps(evolved)})[0]
        == 200
    )
