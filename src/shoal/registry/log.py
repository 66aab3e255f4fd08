"""Where registry records live: the compacted, one-partition ``_schemas`` topic.

:class:`KafkaSchemaLog` talks the Kafka protocol through confluent-kafka, so the registry runs
against shoal's broker and against Apache Kafka alike. :class:`MemorySchemaLog` keeps records
in a list, for tests of the registry's logic that need no broker.

The registry is the topic's single writer (like Confluent's elected leader), so the state it
folds locally after each acknowledged append equals what a replay would rebuild.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Final, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

TOPIC: Final = "_schemas"
REQUEST_TIMEOUT_S: Final = 30.0
"""A broker that does not acknowledge a write within this is treated as down: the request
fails with 50001 and the state stays as it was."""
REPLAY_POLL_S: Final = 0.5
REPLICATION_FACTOR_MAX: Final = 3
"""Copies of ``_schemas`` on a Kafka cluster (Confluent's ``kafkastore.topic.replication.factor``
default): the registry's state survives the loss of a broker. A cluster with fewer brokers
(one shoal broker) gets one copy per broker, as Confluent's registry does."""


class SchemaLogError(Exception):
    """The log could not be read or written."""


class SchemaLog(Protocol):
    def replay(self) -> list[tuple[bytes, bytes | None]]:
        """Every record from the start of the log to its end at the time of the call."""
        ...

    def append(self, records: list[tuple[bytes, bytes | None]]) -> None:
        """Append ``records`` durably, in order; return only once acknowledged."""
        ...

    def close(self) -> None: ...


class MemorySchemaLog:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []
        self.fail_appends = False  # lets tests check that a failed write changes nothing

    def replay(self) -> list[tuple[bytes, bytes | None]]:
        return list(self.records)

    def append(self, records: list[tuple[bytes, bytes | None]]) -> None:
        if self.fail_appends:
            raise SchemaLogError("appends are failing (test switch)")
        self.records.extend(records)

    def close(self) -> None:
        pass


class KafkaSchemaLog:
    """The ``_schemas`` topic. The topic is created on the first write, not at start, so a
    broker whose registry is never used gets no extra topic and keeps no client connections."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic: str = TOPIC,
        client_config: Mapping[str, str] | None = None,
    ) -> None:
        """``client_config``: more librdkafka settings of its clients (security.protocol,
        SASL and TLS settings)."""
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._client_config = dict(client_config or {})
        self._producer: Producer | None = None
        self._topic_ready = False
        self._lock = threading.Lock()

    def _admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap_servers, **self._client_config})

    def _topic_exists(self) -> bool:
        metadata = self._admin().list_topics(timeout=REQUEST_TIMEOUT_S)
        topic = metadata.topics.get(self.topic)
        return topic is not None and topic.error is None

    def _replication_factor(self) -> int:
        brokers = len(self._admin().list_topics(timeout=REQUEST_TIMEOUT_S).brokers)
        return max(1, min(REPLICATION_FACTOR_MAX, brokers))

    def _ensure_topic(self) -> None:
        if self._topic_ready or self._topic_exists():
            self._topic_ready = True
            return
        new = NewTopic(
            self.topic,
            num_partitions=1,
            replication_factor=self._replication_factor(),
            # Compaction keeps the newest record per key forever: the registry's state never
            # ages out, and tombstones forget hard-deleted versions.
            config={"cleanup.policy": "compact"},
        )
        admin = self._admin()  # held until the future resolves: destroying it cancels the call
        future = admin.create_topics([new], request_timeout=REQUEST_TIMEOUT_S)[self.topic]
        try:
            future.result(timeout=REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            error = exc.args[0]
            if not (
                isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
            ):
                raise SchemaLogError(f"cannot create topic {self.topic}: {exc}") from exc
        self._topic_ready = True

    def replay(self) -> list[tuple[bytes, bytes | None]]:
        try:
            if not self._topic_exists():
                return []
            self._topic_ready = True
            return self._read_to_end()
        except KafkaException as exc:
            raise SchemaLogError(f"cannot read {self.topic}: {exc}") from exc

    def _read_to_end(self) -> list[tuple[bytes, bytes | None]]:
        # No consumer group: the registry reads the whole partition itself and commits nothing.
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "group.id": "shoal-registry-replay",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                **self._client_config,
            }
        )
        try:
            partition = TopicPartition(self.topic, 0)
            _low, high = consumer.get_watermark_offsets(partition, timeout=REQUEST_TIMEOUT_S)
            records: list[tuple[bytes, bytes | None]] = []
            if high <= 0:
                return records
            consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            position = -1
            while position < high - 1:
                message = consumer.poll(REPLAY_POLL_S)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        # The end offset moved back (compaction, delete-records): done.
                        break
                    raise SchemaLogError(f"reading {self.topic}: {error}")
                offset = message.offset()
                position = position if offset is None else int(offset)
                key = message.key()
                if key is not None:
                    records.append((bytes(key), _value_bytes(message.value())))
            return records
        finally:
            consumer.close()

    def append(self, records: list[tuple[bytes, bytes | None]]) -> None:
        with self._lock:
            try:
                self._ensure_topic()
                producer = self._get_producer()
                failures: list[str] = []

                def on_delivery(err: Any, _msg: Any) -> None:
                    if err is not None:
                        failures.append(str(err))

                for key, value in records:
                    producer.produce(
                        self.topic, key=key, value=value, partition=0, on_delivery=on_delivery
                    )
                remaining = producer.flush(REQUEST_TIMEOUT_S)
            except KafkaException as exc:
                raise SchemaLogError(f"cannot write {self.topic}: {exc}") from exc
            if remaining:
                raise SchemaLogError(f"{remaining} records to {self.topic} were not acknowledged")
            if failures:
                raise SchemaLogError(f"writing {self.topic}: {failures[0]}")

    def _get_producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {
                    "bootstrap.servers": self.bootstrap_servers,
                    # A registry write is acknowledged to the HTTP client only once durable,
                    # and a retried send never duplicates or reorders a change.
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 0,
                    **self._client_config,
                }
            )
        return self._producer

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(REQUEST_TIMEOUT_S)
                self._producer = None


def _value_bytes(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise SchemaLogError(f"unexpected record value type {type(value).__name__}")
