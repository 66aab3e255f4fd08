"""Wait until every broker of a Kafka cluster knows a set of topics (issue 21).

Kafka documents that "it may take several seconds after CreateTopicsResult returns success for
all the brokers to become aware that the topics have been created": each broker applies the
controller's metadata on its own schedule. A consumer that joins its group meanwhile can be
assigned nothing: the group leader computes the assignment from the Metadata answer of the
group coordinator, and a coordinator that does not know the topic yet makes it assign no
partition of it; librdkafka then sees no change in the topic's metadata that would make it
rejoin, so the consumer stays in its group with no partitions. The App therefore subscribes
only once every broker answers for every topic it declared.

One short-lived client per broker, bootstrapped on that broker alone: its first Metadata
request can go nowhere else. A single-broker cluster (shoal) has nothing to wait for.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import confluent_kafka
import confluent_kafka.admin

log = logging.getLogger("shoal.app.transports.kafka")

KNOWN_WAIT_S: Final = 10.0
"""Bound on the wait: past it the App starts anyway (and logs which broker lagged), as it did
before this check; a broker that lags that long is unwell, not slow."""
BROKER_TIMEOUT_S: Final = 2.0
"""One broker's answer: a broker that does not answer in this time is skipped (it may be the
one that is down; the others are what the consumers will use)."""
POLL_S: Final = 0.1


def missing_on(admin: Any, topics: list[str]) -> list[str]:
    """The topics this client's broker does not report with a leader for every partition."""
    listed = admin.list_topics(timeout=BROKER_TIMEOUT_S).topics
    missing = []
    for topic in topics:
        meta = listed.get(topic)
        if (
            meta is None
            or meta.error is not None
            or not meta.partitions
            or any(p.error is not None or p.leader < 0 for p in meta.partitions.values())
        ):
            missing.append(topic)
    return missing


def wait_known_everywhere(config: dict[str, Any], topics: list[str]) -> None:
    """Return once every live broker reports each of ``topics`` (or after
    :data:`KNOWN_WAIT_S`, with a warning)."""
    if not topics:
        return
    quiet = {**config, "log_level": 0}
    brokers = confluent_kafka.admin.AdminClient(quiet).list_topics(timeout=BROKER_TIMEOUT_S)
    if len(brokers.brokers) <= 1:
        return
    deadline = time.monotonic() + KNOWN_WAIT_S
    for broker in brokers.brokers.values():
        address = f"{broker.host}:{broker.port}"
        admin = confluent_kafka.admin.AdminClient({**quiet, "bootstrap.servers": address})
        while True:
            try:
                missing = missing_on(admin, topics)
            except confluent_kafka.KafkaException:
                break  # the broker does not answer: not one the consumers can use either
            if not missing:
                break
            if time.monotonic() > deadline:
                log.warning(
                    "broker %s (id %d) still does not know %s after %.0f s; starting anyway",
                    address,
                    broker.id,
                    missing,
                    KNOWN_WAIT_S,
                )
                return
            time.sleep(POLL_S)
