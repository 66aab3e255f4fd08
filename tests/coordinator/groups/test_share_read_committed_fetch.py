"""A read_committed share fetch whose read held only records of an aborted transaction reads
on at once (issue 16): those records are archived, and the committed record after them is
delivered in the same ShareFetch, not after the request's max_wait.

The fetch asks for few bytes (the aborted batch alone fills them) and a long max_wait; before
the fix the request archived the aborted records, found nothing to deliver, and waited for an
append that never came until max_wait ran out. The bound below is a hang guard well under
that max_wait, not a measurement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from shoal.embedded import EmbeddedBroker
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

SHARE_GROUP_HEARTBEAT, SHARE_FETCH = 76, 78
MAX_WAIT_MS = 60_000
"""The request's max_wait: a fetch that waits it out fails the hang guard first."""
ANSWER_WAIT_S = 20.0
"""The hang guard: well under MAX_WAIT_MS."""
FETCH_MAX_BYTES = 300
"""Less than the aborted batch (20 records of 100 B): a read holds that batch alone."""
ABORTED_RECORDS = 20


def _configure(bootstrap: str, topic: str, group: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    change = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            for name, value in (
                ("share.auto.offset.reset", "earliest"),
                ("share.isolation.level", "read_committed"),
            )
        ],
    )
    admin.incremental_alter_configs([change])[change].result(30)


def _aborted_then_committed(bootstrap: str, topic: str) -> None:
    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"txn-{uuid.uuid4()}"})
    txn.init_transactions(30)
    txn.begin_transaction()
    for i in range(ABORTED_RECORDS):
        txn.produce(topic, key=b"aborted", value=bytes(100) + str(i).encode())
    assert txn.flush(30) == 0
    txn.abort_transaction(30)
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce(topic, key=b"committed", value=b"after")
    assert plain.flush(30) == 0


def test_a_fetch_reads_on_past_an_aborted_transaction_without_waiting(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(share_version=1)
    bootstrap = broker.bootstrap_servers
    topic, group, member = "rc-share", "rc-share-group", f"member-{uuid.uuid4().hex[:16]}"
    _configure(bootstrap, topic, group)
    _aborted_then_committed(bootstrap, topic)
    topic_id = broker.app.broker.topics.get(topic).topic_id  # type: ignore[union-attr]

    with WireClient(bootstrap) as client:
        joined = client.request(
            SHARE_GROUP_HEARTBEAT,
            1,
            {
                "group_id": group,
                "member_id": member,
                "member_epoch": 0,
                "rack_id": None,
                "subscribed_topic_names": [topic],
            },
        )
        assert int(joined.error_code) == 0, joined
        fetch = {
            "group_id": group,
            "member_id": member,
            "share_session_epoch": 0,
            "max_wait": MAX_WAIT_MS,
            "min_bytes": 1,
            "max_bytes": FETCH_MAX_BYTES,
            "max_records": 10,
            "batch_size": 10,
            "topics": [
                {
                    "topic_id": topic_id,
                    "partitions": [{"partition_index": 0, "acknowledgement_batches": []}],
                }
            ],
            "forgotten_topics_data": [],
        }
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(client.request, SHARE_FETCH, 1, fetch).result(ANSWER_WAIT_S)

    assert int(answer.error_code) == 0, answer
    (partition,) = answer.responses[0].partitions
    assert int(partition.error_code) == 0
    acquired = [(int(r.first_offset), int(r.last_offset)) for r in partition.acquired_records]
    # Offsets 0-19 aborted (archived), 20 the abort marker, 21 the committed record.
    assert acquired == [(ABORTED_RECORDS + 1, ABORTED_RECORDS + 1)]
