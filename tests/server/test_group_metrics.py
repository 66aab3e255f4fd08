"""``GET /metrics``: consumer group offsets, lag and members under kafka_exporter's names."""

from __future__ import annotations

import re

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from shoal.embedded import EmbeddedBroker
from tests.coordinator.groups.clients import wait_until
from tests.support.broker import create_topic

pytestmark = pytest.mark.integration

PATIENCE_S = 60.0
_SAMPLE = re.compile(r"^(\w+)(?:\{([^}]*)\})? (\S+)$")
"""A sample line, with or without labels (both are the exposition format)."""


def _scrape(broker: EmbeddedBroker) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{broker.http_url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in response.text.splitlines():
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match is not None, line
        pairs = match.group(2).split(",") if match.group(2) else []
        labels = frozenset(tuple(pair.split("=", 1)) for pair in pairs)
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def _poll(consumer: Consumer) -> None:
    consumer.poll(0.1)


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset((key, f'"{value}"') for key, value in labels.items())


def test_metrics_show_committed_offsets_lag_and_members(shoal_broker: EmbeddedBroker) -> None:
    topic, group = "metrics-topic", "metrics-group"
    create_topic(shoal_broker, topic, 2)
    producer = Producer({"bootstrap.servers": shoal_broker.bootstrap_servers, "acks": "all"})
    for i in range(20):  # 10 per partition
        producer.produce(topic, str(i).encode(), partition=i % 2)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": shoal_broker.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        assert wait_until(
            lambda: len(consumer.assignment()) == 2, PATIENCE_S, lambda: _poll(consumer)
        )
        consumer.commit(
            offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 7)], asynchronous=False
        )
        samples = _scrape(shoal_broker)
        p0 = _labels(consumergroup=group, topic=topic, partition="0")
        p1 = _labels(consumergroup=group, topic=topic, partition="1")
        assert samples[("kafka_consumergroup_current_offset", p0)] == 3
        assert samples[("kafka_consumergroup_current_offset", p1)] == 7
        assert samples[("kafka_consumergroup_lag", p0)] == 7
        assert samples[("kafka_consumergroup_lag", p1)] == 3
        assert (
            samples[("kafka_consumergroup_lag_sum", _labels(consumergroup=group, topic=topic))]
            == 10
        )
        assert samples[("kafka_consumergroup_members", _labels(consumergroup=group))] == 1
    finally:
        consumer.close()
    # After the consumer leaves, the group has no members; its offsets stay.
    samples = _scrape(shoal_broker)
    assert samples[("kafka_consumergroup_members", _labels(consumergroup=group))] == 0
    assert samples[("kafka_consumergroup_current_offset", p1)] == 7
