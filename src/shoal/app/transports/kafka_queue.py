"""The Kafka transport's queue consumer (``queue=True``): a KIP-932 share group through
confluent-kafka's ShareConsumer, on its own single-thread executor (the share consumer is not
thread-safe, and its calls block).

Acknowledgement is explicit: each record of a fetch is settled (ACCEPT, RELEASE or REJECT)
by :meth:`KafkaQueueConsumer.settle`, which sends them all and waits for the broker's answer
(shoal answers once the share-partition state is fsynced) before the next fetch, as the share
consumer requires in explicit mode.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import confluent_kafka
import confluent_kafka.admin
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from shoal.app.message import Message
from shoal.app.transport import Acknowledgement, TopicPartition, TransportError
from shoal.app.transports.daemon_call import in_daemon_thread
from shoal.app.transports.kafka_consumer import METADATA_TIMEOUT_S, _message

log = logging.getLogger("shoal.app.transports.kafka")

SHARE_AUTO_OFFSET_RESET: Final = "share.auto.offset.reset"
SHARE_DELIVERY_COUNT_LIMIT: Final = "share.delivery.count.limit"
SETTLE_TIMEOUT_S: Final = 30.0
"""How long a settle waits for the broker's answer; past it the outcome is unknown, and the
records come back after their lock timeout if the broker never got it (at-least-once)."""
FETCH_RECORDS_MAX: Final = 50
"""The share consumer's ``max.poll.records`` unless the broker URL sets one: a fetch is settled
as a whole, so its records must all be handled within the broker's record lock (Kafka's
``share.record.lock.duration.ms``, 30 s by default); librdkafka's default, 500, held locks for
50 s with 100 ms handlers one at a time, and the broker gave those records to another consumer
meanwhile. Fewer records a fetch cost one more acknowledgement round trip per 50 records.
A bound, not an exact size: Kafka 4.4 and shoal acquire new records in whole stored batches
by default (batch_optimized; librdkafka's ShareFetch v1 cannot ask for record_limit), so a
fetch may also hold the rest of the producer batch the limit falls in."""
ALL_PARTITIONS: Final = -1
"""The partition :meth:`KafkaQueueConsumer.assignment` names: a share group has no
per-consumer partitions, every consumer reads every partition."""

_ACK_TYPES: Final = {
    Acknowledgement.ACCEPT: confluent_kafka.AcknowledgeType.ACCEPT,
    Acknowledgement.RELEASE: confluent_kafka.AcknowledgeType.RELEASE,
    Acknowledgement.REJECT: confluent_kafka.AcknowledgeType.REJECT,
}


class KafkaQueueConsumer:
    def __init__(self, config: dict[str, Any], topics: list[str], group: str) -> None:
        self._client_config = config
        self._config = {
            "max.poll.records": str(FETCH_RECORDS_MAX),
            **config,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
        }
        self._topics = topics
        self._group = group
        self._consumer: Any = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"shoal-queue-{group}")
        self._paused = False
        self._polled = False
        self._in_flight: dict[tuple[str, int, int], Any] = {}
        """The last fetch's records not settled yet (the client's own message objects)."""

    async def _call(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args))

    async def start(self) -> None:
        await self._call(self._start_from_earliest)
        self._consumer = await self._call(confluent_kafka.ShareConsumer, self._config)
        await self._call(self._consumer.subscribe, self._topics)

    def _start_from_earliest(self) -> None:
        """A new share group starts at the log end (``share.auto.offset.reset`` is ``latest``
        by default), which would skip what was published before the app first started; the
        framework's consumer groups start at the earliest offset, so its queues do too. A value
        an operator set for the group is left alone."""
        admin = confluent_kafka.admin.AdminClient({"log_level": 4, **self._client_config})
        resource = ConfigResource(ResourceType.GROUP, self._group)
        try:
            described = admin.describe_configs([resource])[resource].result(METADATA_TIMEOUT_S)
            entry = described.get(SHARE_AUTO_OFFSET_RESET)
            if entry is not None and not entry.is_default:
                return
            change = ConfigResource(
                ResourceType.GROUP,
                self._group,
                incremental_configs=[
                    ConfigEntry(
                        SHARE_AUTO_OFFSET_RESET,
                        "earliest",
                        incremental_operation=AlterConfigOpType.SET,
                    )
                ],
            )
            admin.incremental_alter_configs([change])[change].result(METADATA_TIMEOUT_S)
        except confluent_kafka.KafkaException as exc:
            # Not fatal: where ACLs deny the app DescribeConfigs/AlterConfigs on its group, the
            # queue starts where the group's config (set by an operator) says.
            log.warning(
                "share group %s: could not make it start at the earliest offset (%s=earliest): %s",
                self._group,
                SHARE_AUTO_OFFSET_RESET,
                exc,
            )

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        """Records of the queue, each with its delivery count. ``max_records`` is not passed
        on: the share consumer returns what the broker acquired for it (its
        ``max.poll.records``), and all of it must be settled before the next fetch."""
        if self._paused:
            # A share consumer may not poll with records unsettled, and while paused (an open
            # breaker) the runner holds some: wait instead. The share consumer's own thread
            # keeps heartbeating, so the member stays in the group.
            await asyncio.sleep(timeout_s)
            return []
        if self._in_flight:
            raise TransportError("fetch before the last fetch's records were settled")
        msgs = await self._call(self._consumer.poll, timeout_s)
        self._polled = True
        out = []
        for msg in msgs:
            error = msg.error()
            if error is not None:
                if error.fatal():
                    raise TransportError(f"share consumer failed: {error}")
                continue  # transient; librdkafka reports it again if it persists
            message = _message(msg)
            message.delivery_count = msg.delivery_count()
            self._in_flight[(message.topic, message.partition, message.offset)] = msg
            out.append(message)
        return out

    async def settle(self, outcomes: list[tuple[Message, Acknowledgement]]) -> None:
        await self._call(self._settle, outcomes)

    def _settle(self, outcomes: list[tuple[Message, Acknowledgement]]) -> None:
        for message, outcome in outcomes:
            raw = self._in_flight.pop((message.topic, message.partition, message.offset), None)
            if raw is None:
                continue  # not of the last fetch (settled twice): the first outcome stands
            self._acknowledge(raw, _ACK_TYPES[outcome])
        # Nothing may stay unsettled (the runner settles every record it fetched): should one
        # slip through, another delivery is the safe outcome.
        for raw in self._in_flight.values():
            self._acknowledge(raw, confluent_kafka.AcknowledgeType.RELEASE)
        self._in_flight.clear()
        try:
            results = self._consumer.commit_sync(SETTLE_TIMEOUT_S)
        except confluent_kafka.KafkaException as exc:
            log.warning("share group %s: acknowledgements not confirmed: %s", self._group, exc)
            return
        for tp, error in results.items():
            if error is not None:
                # The lock had expired (the record went to another consumer) or the broker
                # refused: the record is delivered again, at-least-once holds.
                log.warning(
                    "share group %s: acknowledgements of %s[%d] refused: %s",
                    self._group,
                    tp.topic,
                    tp.partition,
                    error,
                )

    def _acknowledge(self, raw: Any, kind: Any) -> None:
        try:
            self._consumer.acknowledge(raw, kind)
        except (confluent_kafka.KafkaException, RuntimeError, ValueError) as exc:
            # No longer in flight (its lock expired): another consumer has it now.
            log.warning("share group %s: cannot acknowledge a record: %s", self._group, exc)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Share groups keep no consumer offsets: :meth:`settle` makes the progress."""

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def assignment(self) -> list[TopicPartition]:
        """Every partition of the subscribed topics, shared (``ALL_PARTITIONS``), once the
        consumer has polled; [] before."""
        return [(topic, ALL_PARTITIONS) for topic in self._topics] if self._polled else []

    async def lag(self) -> dict[TopicPartition, int]:
        """{}: a share group's backlog is not one consumer's (DescribeShareGroupOffsets)."""
        return {}

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            # close() acknowledges what was settled and leaves the group; records fetched and
            # not settled are released by the broker when the member leaves.
            try:
                # A daemon thread of its own: App.stop may abandon a close a vanished broker
                # keeps retrying, and the process still exits (see daemon_call).
                await in_daemon_thread(consumer.close, f"shoal-close-{self._group}")
            except confluent_kafka.KafkaException as exc:
                log.warning("share group %s: close failed: %s", self._group, exc)
            except asyncio.CancelledError:
                log.warning(
                    "share group %s: closing the consumer abandoned (the broker did not answer "
                    "in time): its settled acknowledgements may be lost, and records it held "
                    "are redelivered once their acquisition locks expire",
                    self._group,
                )
                raise
        self._in_flight.clear()
        self._executor.shutdown(wait=False)


def share_delivery_count_limit(config: dict[str, Any], group: str) -> int | None:
    """The share group's ``share.delivery.count.limit`` as the broker serves it (the group's
    own value, or the broker's ``group.share.delivery.count.limit``), read with DescribeConfigs
    of the GROUP resource; None when the broker does not say (ACLs denying DescribeConfigs on
    the group, a broker without group configs): the App cannot check it then, and says so."""
    admin = confluent_kafka.admin.AdminClient({"log_level": 4, **config})
    resource = ConfigResource(ResourceType.GROUP, group)
    try:
        described = admin.describe_configs([resource])[resource].result(METADATA_TIMEOUT_S)
    except confluent_kafka.KafkaException as exc:
        log.warning("share group %s: cannot read %s: %s", group, SHARE_DELIVERY_COUNT_LIMIT, exc)
        return None
    entry = described.get(SHARE_DELIVERY_COUNT_LIMIT)
    if entry is None or entry.value is None:
        return None
    return int(entry.value)
