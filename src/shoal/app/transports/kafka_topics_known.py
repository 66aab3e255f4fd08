"""Wait until every broker of a Kafka cluster knows a set of topics (issue 21).

Kafka documents that "it may take several seconds after CreateTopicsResult returns success for
all the brokers to become aware that the topics have been created": each broker applies the
controller's metadata on its own schedule. A consumer that joins its group meanwhile can be
assigned nothing: the group leader computes the assignment from the Metadata answer of the
group coordinator, and a coordinator that does not know the topic yet makes it assign no
partition of it; librdkafka then sees no change in the topic's metadata that would make it
rejoin, so the consumer stays in its group with no partitions. The App therefore subscribes
only once every broker answers for every topic it declared.

What counts is that a broker knows the topic and its partitions, not that every partition has
a leader: the assignment is computed from the partition count, and a partition whose only
replica is on a dead broker (replication factor 1) stays leaderless until that broker returns,
which no wait at start-up can shorten.

The wait is an optimisation of the consumers' first join, never a condition of the App's
start: everything in it (the clients it creates, their first connection, which a slow TLS or
SASL handshake can hold up, every request) is bounded by :data:`KNOWN_WAIT_S` in total, and a
failure ends it with a warning. It asks each broker only about the topics that broker has not
reported yet, one topic per Metadata request (librdkafka asks for one topic or for all), with
a growing pause between rounds: a cluster with thousands of topics is not asked for all of them
ten times a second. librdkafka cannot address a Metadata request to a chosen broker, so each
answer is credited to the broker that gave it (confluent-kafka's ``orig_broker_id``); a broker
that no request reached is not waited for past the bound, and not reported as lagging. A
single-broker cluster (shoal) has nothing to wait for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, Final

import confluent_kafka
from confluent_kafka.admin import AdminClient

log = logging.getLogger("shoal.app.transports.kafka")

KNOWN_WAIT_S: Final = 10.0
"""Bound on the whole wait, clients' creation and connection included: past it the App starts
anyway (and logs which broker lagged), as it did before this check; a broker that lags that
long is unwell, not slow."""
BROKER_TIMEOUT_S: Final = 2.0
"""One answer: a broker that does not answer in this time is given up (it may be the one that is
down; the others are what the consumers will use)."""
BACKOFF_FIRST_S: Final = 0.1
"""The first pause between rounds: a broker usually applies a new topic within milliseconds."""
BACKOFF_MAX_S: Final = 1.0
"""The longest pause: a broker that lags for seconds is asked about once a second."""

_NOT_KNOWN_YET: Final = frozenset(
    {
        confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART,
        # Returned at topic level (not partition level) by brokers still creating a topic.
        confluent_kafka.KafkaError.LEADER_NOT_AVAILABLE,
    }
)
"""Topic-level errors that waiting can cure. Others (an authorization failure, an invalid name)
will not change by waiting: the consumer reports them itself."""


def backoff_s() -> Iterator[float]:
    """The pauses between rounds: doubling from :data:`BACKOFF_FIRST_S` to
    :data:`BACKOFF_MAX_S`."""
    pause_s = BACKOFF_FIRST_S
    while True:
        yield pause_s
        pause_s = min(pause_s * 2, BACKOFF_MAX_S)


def is_known(meta: Any) -> bool:
    """Whether a broker's metadata of one topic (confluent-kafka's ``TopicMetadata``, or None
    when the answer did not list it) shows that the broker knows the topic: listed with its
    partitions, whatever their leaders."""
    if meta is None:
        return False
    if meta.error is not None:
        return meta.error.code() not in _NOT_KNOWN_YET
    return bool(meta.partitions)


def missing_on(admin: Any, topics: list[str], timeout_s: float = BROKER_TIMEOUT_S) -> list[str]:
    """The topics of ``topics`` that the broker answering ``admin``'s requests does not know,
    one Metadata request per topic."""
    missing = []
    for topic in topics:
        listed = admin.list_topics(topic=topic, timeout=timeout_s).topics
        if not is_known(listed.get(topic)):
            missing.append(topic)
    return missing


class _Wait:
    """One wait: its deadline, and the topics each broker has not reported yet."""

    def __init__(self, config: dict[str, Any], topics: list[str]) -> None:
        # Quiet: the clients are short-lived, and a broker that is down is expected here.
        self.config = {**config, "log_level": 0, "allow.auto.create.topics": False}
        self.topics = topics
        self.deadline = time.monotonic() + KNOWN_WAIT_S
        self.missing: dict[int, list[str]] = {}
        """Broker id → the topics it has not reported yet."""
        self.addresses: dict[int, str] = {}
        self.denied: dict[int, set[str]] = {}
        """Broker id → the topics it answered it does not know (at its latest answer about
        each). Only these are reported: librdkafka may send every request about one topic to
        other brokers, and a broker never asked about a topic gave no sign that it lags."""

    def timeout_s(self) -> float:
        return max(min(BROKER_TIMEOUT_S, self.deadline - time.monotonic()), 0.0)

    def find_brokers(self) -> bool:
        """Learn the cluster's brokers; False if there is nothing to wait for."""
        admin = AdminClient(self.config)
        # The first answer waits for the connection (and its handshake): bounded by the whole
        # wait, not by one answer's time.
        cluster = admin.list_topics(
            topic=self.topics[0], timeout=max(self.deadline - time.monotonic(), 0.0)
        )
        if len(cluster.brokers) <= 1:
            return False
        for broker in cluster.brokers.values():
            self.addresses[broker.id] = f"{broker.host}:{broker.port}"
            self.missing[broker.id] = list(self.topics)
        return True

    def ask(self, broker_id: int) -> None:
        """Ask about the topics ``broker_id`` has not reported, through a new client
        bootstrapped on it. Each answer is credited to the broker that gave it: librdkafka
        drops its bootstrap connection once it has learned the cluster's brokers and then
        sends requests to whichever broker it connected to, so a client's answers come from
        its bootstrap broker (id -1 in the answer) only at first, and a new client is the best
        chance of asking that broker."""
        admin = AdminClient({**self.config, "bootstrap.servers": self.addresses[broker_id]})
        for topic in list(self.missing.get(broker_id, ())):
            if self.timeout_s() <= 0:
                return  # the wait is over: run() reports what is still missing
            answer = admin.list_topics(topic=topic, timeout=self.timeout_s())
            by = broker_id if answer.orig_broker_id < 0 else answer.orig_broker_id
            denied = self.denied.setdefault(by, set())
            if not is_known(answer.topics.get(topic)):
                denied.add(topic)
                continue
            denied.discard(topic)
            missing = self.missing.get(by)
            if missing is not None and topic in missing:
                missing.remove(topic)

    def run(self) -> None:
        if not self.find_brokers():
            return
        pauses = backoff_s()
        while True:
            for broker_id in [b for b, topics in self.missing.items() if topics]:
                try:
                    self.ask(broker_id)
                except confluent_kafka.KafkaException as exc:
                    # The broker does not answer: not one the consumers can use either.
                    log.debug("broker %d not waited for: %s", broker_id, exc)
                    self.missing.pop(broker_id, None)
            lagging = {b: topics for b, topics in self.missing.items() if topics}
            if not lagging:
                return
            pause_s = next(pauses)
            if time.monotonic() + pause_s > self.deadline:
                self.report(lagging)
                return
            time.sleep(pause_s)

    def report(self, lagging: dict[int, list[str]]) -> None:
        for broker_id, topics in lagging.items():
            denied = [t for t in topics if t in self.denied.get(broker_id, ())]
            if not denied:
                # Every request about these went to another broker (librdkafka's choice):
                # nothing known about this one, and no sign that it lags.
                log.debug("broker %d never answered the wait about %s", broker_id, topics)
                continue
            log.warning(
                "broker %s (id %d) still does not know %s after %.0f s; starting anyway",
                self.addresses[broker_id],
                broker_id,
                denied,
                KNOWN_WAIT_S,
            )


def wait_known_everywhere(config: dict[str, Any], topics: list[str]) -> None:
    """Return once every live broker reports each of ``topics`` (or after
    :data:`KNOWN_WAIT_S`, with a warning). Never raises for the cluster's sake: the wait only
    spares the consumers a join before their topics are known everywhere."""
    if not topics:
        return
    try:
        _Wait(config, list(dict.fromkeys(topics))).run()
    except confluent_kafka.KafkaException as exc:
        log.warning("could not check that every broker knows %s (%s); starting anyway", topics, exc)
