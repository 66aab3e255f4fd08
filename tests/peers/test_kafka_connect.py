"""Kafka Connect 4.4 on shoal, distributed mode (must-show 3 of issue 15).

A Connect worker (connect-runtime 4.4 from Maven Central) keeps its connector configs, source
offsets and statuses in three topics it creates compacted on shoal. It runs connect-mirror's
``MirrorSourceConnector`` (4.1.0: the newest version Maven Central serves here) copying the
``orders`` topic to ``src.orders`` on the same broker. The test

1. produces a first batch, creates the connector over Connect's REST API and checks every record
   arrives, in order, and that Connect stored the source offset;
2. SIGKILLs the worker, produces a second batch, and starts a new worker: it reads the
   connector from the config topic (no new REST call) and resumes from the stored offset, so
   the target ends with each record exactly once, none lost; a third batch makes it store
   its offset again;
3. checks Connect's three topics are compacted on shoal, with the topic settings the worker
   gave them, and that the cleaner compacted its offsets and status topics (records left from
   the first worker were superseded by the second's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from shoal.embedded import EmbeddedBroker
from tests.peers.kafka_apps import (
    JvmApp,
    connect_classpath,
    connect_worker_properties,
    log_end_offset,
    read_partition,
)
from tests.peers.kafka_peer import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GROUP = "connect"
CONNECTOR = "mirror"
TARGET = "src.orders"
"""MirrorMaker 2's default replication policy names the copy after the source alias."""
START_TIMEOUT_S = 90.0
WAIT_S = 90.0


def _produce(bootstrap: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for value in values:
        producer.produce("orders", key=value[-2:], value=value)
    assert producer.flush(30) == 0


def _read(bootstrap: str, topic: str, count: int, app: JvmApp) -> list[bytes]:
    """The first ``count`` values of ``topic`` (waits for them), then anything more at once."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic()}"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                if len(values) >= count:
                    break  # nothing more after what was expected: no duplicate
                continue
            if message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    assert len(values) >= count, f"{len(values)} of {count} records in {topic}:\n{app.tail()}"
    return values


def _wait(condition: Callable[[], bool], what: str, app: JvmApp) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if not app.alive():
            raise AssertionError(f"the Connect worker exited before {what}:\n{app.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {WAIT_S} s:\n{app.tail()}")
        time.sleep(0.25)


def _get(url: str) -> Any:
    try:
        response = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def _stored_offset(rest: str) -> int:
    """The source offset Connect stored for orders-0 (KIP-875's GET /connectors/x/offsets)."""
    body = _get(f"{rest}/connectors/{CONNECTOR}/offsets")
    for entry in (body or {}).get("offsets", []):
        if entry["partition"].get("topic") == "orders":
            return int(entry["offset"]["offset"])
    return -1


def _task_running(rest: str) -> bool:
    status = _get(f"{rest}/connectors/{CONNECTOR}/status")
    tasks = (status or {}).get("tasks", [])
    return bool(tasks) and all(task["state"] == "RUNNING" for task in tasks)


def _start_worker(properties: Path, log: Path, rest: str) -> JvmApp:
    worker = JvmApp(
        connect_classpath(),
        "org.apache.kafka.connect.cli.ConnectDistributed",
        str(properties),
        log_path=log,
    ).start()
    _wait(lambda: _get(f"{rest}/") is not None, "the REST API", worker)
    return worker


def test_mirror_source_connector_resumes_from_its_stored_offsets(
    shoal_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path
) -> None:
    broker = shoal_broker_factory(log_cleaner_backoff_ms=50, group_initial_rebalance_delay_ms=0)
    bootstrap = broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("orders", 1)])["orders"].result(10)
    port = free_port()
    rest = f"http://127.0.0.1:{port}"
    properties = tmp_path / "worker.properties"
    properties.write_text(connect_worker_properties(bootstrap, port, GROUP))
    first = [f"order-{i:04d}".encode() for i in range(50)]
    second = [f"order-{i:04d}".encode() for i in range(50, 120)]
    third = [f"order-{i:04d}".encode() for i in range(120, 150)]
    total = len(first) + len(second) + len(third)
    _produce(bootstrap, first)

    worker = _start_worker(properties, tmp_path / "connect-1.log", rest)
    try:
        config = {
            "connector.class": "org.apache.kafka.connect.mirror.MirrorSourceConnector",
            "source.cluster.alias": "src",
            "target.cluster.alias": "dst",
            "source.cluster.bootstrap.servers": bootstrap,
            "target.cluster.bootstrap.servers": bootstrap,
            "topics": "orders",
            "tasks.max": "1",
            "replication.factor": "1",
            "offset-syncs.topic.replication.factor": "1",
            "sync.topic.acls.enabled": "false",
            "key.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
            "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
        }
        created = httpx.post(
            f"{rest}/connectors", json={"name": CONNECTOR, "config": config}, timeout=30
        )
        assert created.status_code == 201, created.text
        assert _read(bootstrap, TARGET, len(first), worker) == first
        _wait(lambda: _stored_offset(rest) == len(first) - 1, "the stored source offset", worker)
    finally:
        worker.kill()

    _produce(bootstrap, second)  # while no worker runs
    worker = _start_worker(properties, tmp_path / "connect-2.log", rest)
    try:
        _wait(lambda: _task_running(rest), "the connector's task restarting", worker)
        assert _read(bootstrap, TARGET, len(first) + len(second), worker) == first + second
        _wait(
            lambda: _stored_offset(rest) == len(first) + len(second) - 1,
            "the stored offset moving on",
            worker,
        )
        # More records, so the second worker stores its offset again (the first store now sits
        # in a sealed segment; a clean only compacts keys it maps from sealed segments).
        _produce(bootstrap, third)
        assert _read(bootstrap, TARGET, total, worker) == first + second + third
        _wait(lambda: _stored_offset(rest) == total - 1, "the third offset store", worker)
        # The offsets and statuses written before are superseded under the same keys: shoal's
        # cleaner keeps only the latest of each in the sealed segments.
        for topic in (f"{GROUP}-offsets", f"{GROUP}-status"):
            written = log_end_offset(bootstrap, topic)
            _wait(lambda t=topic, w=written: len(read_partition(bootstrap, t)) < w, topic, worker)
    finally:
        worker.stop()

    for topic in (f"{GROUP}-configs", f"{GROUP}-offsets", f"{GROUP}-status"):
        resource = ConfigResource(ResourceType.TOPIC, topic)
        configs = admin.describe_configs([resource])[resource].result(10)
        assert configs["cleanup.policy"].value == "compact", topic
        assert configs["segment.ms"].value == "100", "the worker's topic settings apply"
