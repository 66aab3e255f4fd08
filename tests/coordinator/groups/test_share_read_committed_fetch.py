"""ShareFetch over transaction data and markers (issue 16): a fetch never waits out its
max_wait while there is something after what it read.

- read_committed, a read that held only records of an aborted transaction: those records are
  archived, and the fetch reads on at once (the abort marker after them);
- a read that held only a transaction's marker (a commit, then more records): Kafka 4.4
  acquires the marker's offset like any offset read (``SharePartition.acquire`` takes the
  whole fetched range) and the consumer acknowledges it as GAP; shoal used to acquire
  nothing there, so the fetch waited for an append and then read the same marker again.

Each fetch asks for few bytes (one stored batch a read) and a long max_wait. The bound below
is a hang guard well under that max_wait, not a measurement.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from confluent_kafka import Producer

from shoal.embedded import EmbeddedBroker
from tests.coordinator.groups.clients import create_share_queue
from tests.server.wire import WireClient
from tests.support.share_wire import (
    ACCEPT,
    GAP,
    SHARE_FETCH,
    SHARE_GROUP_HEARTBEAT,
    acquired_ranges,
    heartbeat_body,
    share_fetch_body,
)

pytestmark = pytest.mark.integration

MAX_WAIT_MS = 60_000
"""The request's max_wait: a fetch that waits it out fails the hang guard first."""
ANSWER_WAIT_S = 20.0
"""The hang guard: well under MAX_WAIT_MS."""
ONE_BATCH = 1
"""max_bytes below any batch: a read holds its first stored batch alone."""
ABORTED_RECORDS = 20
COMMITTED_RECORDS = 3


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    data_dir: Path = tmp_path_factory.mktemp("share-txn-fetch")
    started = EmbeddedBroker(str(data_dir), share_version=1).start()
    yield started
    started.stop()


def _configure(bootstrap: str, topic: str, group: str, isolation: str) -> None:
    configs = {"share.auto.offset.reset": "earliest", "share.isolation.level": isolation}
    create_share_queue(bootstrap, topic, group, configs)


def _transaction_then_plain(bootstrap: str, topic: str, records: int, *, commit: bool) -> None:
    """One transaction of ``records`` records (one batch), ended, then one plain record."""
    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"txn-{uuid.uuid4()}"})
    txn.init_transactions(30)
    txn.begin_transaction()
    for i in range(records):
        txn.produce(topic, key=b"txn", value=bytes(100) + str(i).encode())
    assert txn.flush(30) == 0
    if commit:
        txn.commit_transaction(30)
    else:
        txn.abort_transaction(30)
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce(topic, key=b"plain", value=b"after")
    assert plain.flush(30) == 0


class _ShareSession:
    """One member's share session over the wire, on one partition."""

    def __init__(self, client: WireClient, broker: EmbeddedBroker, topic: str, group: str):
        self.client, self.group = client, group
        self.member = f"member-{uuid.uuid4().hex[:16]}"
        self.topic_id = broker.app.broker.topics.get(topic).topic_id  # type: ignore[union-attr]
        self.epoch = 0
        joined = client.request(
            SHARE_GROUP_HEARTBEAT, 1, heartbeat_body(group, self.member, 0, [topic])
        )
        assert int(joined.error_code) == 0, joined

    def fetch(self, acks: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        """A ShareFetch carrying ``acks`` (first, last, type): the ranges it acquired."""
        values = share_fetch_body(
            self.group,
            self.member,
            self.epoch,
            self.topic_id,
            acks=acks,
            max_wait_ms=MAX_WAIT_MS,
            max_bytes=ONE_BATCH,
            max_records=100,
        )
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(self.client.request, SHARE_FETCH, 1, values).result(ANSWER_WAIT_S)
        self.epoch += 1
        assert int(answer.error_code) == 0, answer
        (partition,) = answer.responses[0].partitions
        assert int(partition.error_code) == 0
        assert int(partition.acknowledge_error_code) == 0, partition
        return acquired_ranges(partition)


def test_a_fetch_reads_on_past_an_aborted_transaction_without_waiting(
    broker: EmbeddedBroker,
) -> None:
    bootstrap = broker.bootstrap_servers
    topic, group = "rc-share", "rc-share-group"
    _configure(bootstrap, topic, group, "read_committed")
    _transaction_then_plain(bootstrap, topic, ABORTED_RECORDS, commit=False)

    with WireClient(bootstrap) as client:
        acquired = _ShareSession(client, broker, topic, group).fetch([])
    # Offsets 0-19 aborted (archived on the first read), 20 the abort marker: the second read
    # holds it alone and acquires it (to be acknowledged as GAP), in the same request.
    assert acquired == [(ABORTED_RECORDS, ABORTED_RECORDS)]


@pytest.mark.parametrize("isolation", ["read_committed", "read_uncommitted"])
def test_a_read_holding_only_a_commit_marker_acquires_it(
    broker: EmbeddedBroker, isolation: str
) -> None:
    bootstrap = broker.bootstrap_servers
    topic, group = f"marker-share-{isolation}", f"marker-share-group-{isolation}"
    _configure(bootstrap, topic, group, isolation)
    _transaction_then_plain(bootstrap, topic, COMMITTED_RECORDS, commit=True)
    marker = COMMITTED_RECORDS

    with WireClient(bootstrap) as client:
        session = _ShareSession(client, broker, topic, group)
        assert session.fetch([]) == [(0, marker - 1)]
        # The next read holds the commit marker alone: its offset is acquired, as Kafka does.
        assert session.fetch([(0, marker - 1, ACCEPT)]) == [(marker, marker)]
        assert session.fetch([(marker, marker, GAP)]) == [(marker + 1, marker + 1)]
    # The GAP acknowledgement made the marker done: the share-partition starts past it.
    share_partition = broker.app.broker.share_groups.partitions[(group, topic, 0)]
    assert share_partition.start_offset == marker + 1
