"""Must-show 3 for KIP-848: a 20-member ``group.protocol=consumer`` group with churn.

The churn of test_churn.py (20 confluent-kafka consumers joining, committing after every
record, leaving and joining again at random, a producer running), on a KIP-848 group: the
broker assigns, and revokes a partition before it hands it to another member. The checker
describes the group (ConsumerGroupDescribe) throughout: no partition is ever in two members'
current assignments, in any epoch, Stable or not; whenever the group is Stable its members own
every partition once; and no committed offset ever goes backwards.

``SHOAL_CHURN848_SECONDS`` sets how long it churns (default 6, `make test`'s quick mode; the
issue's minute is ``make churn-full``). ``SHOAL_CHURN_SEED`` replays a printed seed.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupType,
)
from confluent_kafka.admin import AdminClient

from shoal.embedded import EmbeddedBroker
from tests.coordinator.groups.clients import check_commits_never_go_back
from tests.coordinator.groups.test_churn import CONSUMERS, PARTITIONS, Churn
from tests.support.broker import create_topic

pytestmark = pytest.mark.integration

CHURN_S = float(os.environ.get("SHOAL_CHURN848_SECONDS", "6"))
HEARTBEAT_MS = 300
"""The broker's group.consumer.heartbeat.interval.ms: reconciliation advances one heartbeat
at a time, so a short one lets the group settle between churn events."""
CHECK_INTERVAL_S = 0.1
SETTLE_S_MAX = 60.0
"""How long the checks may go on past CHURN_S to see a Stable group and every partition
committed (an upper bound only)."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(
        str(tmp_path_factory.mktemp("churn848")),
        group_consumer_heartbeat_interval_ms=HEARTBEAT_MS,
        group_consumer_session_timeout_ms=3_000,
    ) as embedded:
        yield embedded


class ConsumerProtocolChurn(Churn):
    def _consumer(self, index: int) -> Consumer:
        # Session and heartbeat are the broker's under KIP-848: librdkafka refuses them here.
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "group.protocol": "consumer",
                "client.id": f"churn848-{index}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "max.poll.interval.ms": 10_000,
                "log_level": 0,
            }
        )


def test_ownership_is_unique_in_every_epoch_through_random_churn(broker: EmbeddedBroker) -> None:
    topic = group = "churn848"
    create_topic(broker, topic, PARTITIONS)
    seed = int(os.environ.get("SHOAL_CHURN_SEED") or random.randrange(1 << 30))
    print(f"SHOAL_CHURN_SEED={seed}")
    churn = ConsumerProtocolChurn(broker.bootstrap_servers, topic, group, seed)
    threads = [threading.Thread(target=churn.produce, daemon=True)]
    threads += [
        threading.Thread(target=churn.member, args=(i,), daemon=True) for i in range(CONSUMERS)
    ]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    checks = stable_checks = 0
    memberships: set[frozenset[str]] = set()
    high: dict[int, int] = {}
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + CHURN_S
        # Past CHURN_S the churn and the checks go on until the run has seen a Stable group
        # and a commit on every partition (a loaded machine may need longer), within a bound.
        while (now := time.monotonic()) < deadline or (
            now < deadline + SETTLE_S_MAX
            and not (stable_checks > 0 and sorted(high) == list(range(PARTITIONS)))
        ):
            described = admin.describe_consumer_groups([group])[group].result(30)
            owners = Counter(
                tp.partition
                for member in described.members
                for tp in member.assignment.topic_partitions
                if tp.topic == topic
            )
            twice = {p: n for p, n in owners.items() if n > 1}
            assert not twice, f"seed {seed}: partitions owned by two members at once: {twice}"
            checks += 1
            if described.members:
                assert described.type == ConsumerGroupType.CONSUMER, described.type
                memberships.add(frozenset(m.member_id for m in described.members))
            if described.state == ConsumerGroupState.STABLE and described.members:
                assert owners == Counter(range(PARTITIONS)), (
                    f"seed {seed}: a Stable group of {len(described.members)} members does "
                    f"not own each partition once: {dict(owners)}"
                )
                stable_checks += 1
            check_commits_never_go_back(admin, group, high, seed)
            time.sleep(CHECK_INTERVAL_S)
    finally:
        churn.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    print(f"{checks} checks, {stable_checks} Stable, {len(memberships)} memberships")
    assert not churn.errors, churn.errors
    assert stable_checks > 0 and len(memberships) > 1, "the run checked too little"
    assert churn.processed > 0
    assert sorted(high) == list(range(PARTITIONS))
