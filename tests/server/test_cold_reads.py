"""A consumer catching up from segments no longer in the page cache is served from a worker
thread, not by reads that stall the event loop, and gets every record."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer

from tests.support.broker import BrokerProcess
from tests.support.page_cache import evict

pytestmark = pytest.mark.integration

RECORDS = 3000
VALUE_BYTES = 1024


def _off_loop_reads(broker: BrokerProcess) -> int:
    with urllib.request.urlopen(f"{broker.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("shoal_fetch_reads_off_loop_total "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no shoal_fetch_reads_off_loop_total in /metrics:\n{text}")


def test_cold_segments_are_read_off_the_event_loop_and_nothing_is_missed(
    broker_process: Callable[..., BrokerProcess],
) -> None:
    broker = broker_process()
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "acks": "all"})
    for i in range(RECORDS):
        producer.produce("cold", key=str(i).encode(), value=str(i).encode().ljust(VALUE_BYTES))
    assert producer.flush(30) == 0

    evict(broker.data_dir)
    assert _off_loop_reads(broker) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": "cold-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["cold"])
    seen: list[int] = []
    try:
        while len(seen) < RECORDS:
            message = consumer.poll(30)
            assert message is not None, f"stalled after {len(seen)} of {RECORDS} records"
            assert message.error() is None, message.error()
            seen.append(int(message.key()))
            assert message.value() == str(seen[-1]).encode().ljust(VALUE_BYTES)
    finally:
        consumer.close()
    assert seen == list(range(RECORDS))
    assert _off_loop_reads(broker) >= 1
