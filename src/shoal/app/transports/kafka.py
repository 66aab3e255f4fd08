"""The Kafka transport: confluent-kafka (librdkafka), against shoal or Apache Kafka alike.

librdkafka calls block, so they run on a worker thread: one single-thread executor per
consumer (a consumer's calls are then never concurrent), and one poll thread for the
producer's delivery reports, which resolve asyncio futures through ``call_soon_threadsafe``:
once per poll for every report that poll served, not once per record (each call writes to the
loop's wake-up pipe; at tens of thousands of records a second that was a system call and a
loop wake-up per record).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import confluent_kafka
import confluent_kafka.admin
from confluent_kafka.cimpl import NewTopic

from shoal.app.message import Headers, Message
from shoal.app.transport import (
    DeliveryLimit,
    RebalanceListener,
    TransportBusy,
    TransportError,
    send_when_room,
)
from shoal.app.transports.daemon_call import in_daemon_thread
from shoal.app.transports.kafka_consumer import (
    METADATA_TIMEOUT_S,
    PRODUCER_DEFAULTS,
    KafkaConsumer,
    _message,
)
from shoal.app.transports.kafka_queue import KafkaQueueConsumer, share_delivery_count_limit
from shoal.app.transports.kafka_topics_known import wait_known_everywhere
from shoal.app.transports.kafka_txn import ACTIVE_TRANSACTION, KafkaTransactionalConsumer

log = logging.getLogger("shoal.app.transports.kafka")


PRODUCER_POLL_S = 0.05
"""How long the delivery-report thread blocks in poll; also how long stop() may wait for it."""
FLUSH_TIMEOUT_S = 30.0
PING_TIMEOUT_S = 2.0
READ_STALL_S_MAX = 30.0
"""Seconds without a record before read_topic gives up: the end offsets were taken from the
broker, so records are there; a long silence means something is wrong, not slow."""
READ_POLL_S = 0.1
"""One wait of read_topic's consume. consume() returns early only once it has all the records
it asked for; when the rest ends in a transaction marker (an offset, never a record) it waits
this long before read_topic sees that the position reached the end."""
READ_BATCH_MAX = 500


class KafkaTransport:
    def __init__(self, bootstrap_servers: str, **config: Any) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, **config}
        self._producer: Any = None
        self._poller: threading.Thread | None = None
        self._running = False
        self._reports = _DeliveryReports()

    @property
    def config(self) -> dict[str, Any]:
        """The librdkafka settings every client of this transport starts from (a copy)."""
        return dict(self._config)

    def producer_config(self) -> dict[str, Any]:
        """The producer's librdkafka settings: the transport's, over shoal's defaults (a
        URL's ``?linger.ms=0`` wins), under what the framework's guarantees need (idempotent,
        acks=all: not overridable)."""
        return {**PRODUCER_DEFAULTS, **self._config, "enable.idempotence": True, "acks": "all"}

    async def start(self) -> None:
        self._producer = confluent_kafka.Producer(self.producer_config())
        self._running = True
        self._poller = threading.Thread(
            target=self._poll, args=(self._producer,), name="shoal-producer", daemon=True
        )
        self._poller.start()

    def _poll(self, producer: Any) -> None:
        # The producer as an argument: stop() drops self._producer while this may still poll.
        while self._running:
            try:
                producer.poll(PRODUCER_POLL_S)
            except Exception as exc:
                # A callback of the user's config (error_cb, stats_cb) raised out of poll: if
                # this thread ended, no delivery would ever be reported again and every send
                # would wait forever. Log it and go on polling.
                log.exception("a producer callback raised; the producer goes on")
                # The traceback holds this frame, which holds the producer: a cycle through
                # the client's C object that the garbage collector cannot break, keeping a
                # stopped producer (and its threads, reconnecting) alive.
                exc.__traceback__ = None
            self._reports.hand_over()

    async def stop(self) -> None:
        if self._producer is None:
            return
        producer, self._producer = self._producer, None
        try:
            # A daemon thread: App.stop may stop waiting once its budget is spent (a broker
            # that went away), and the process still exits. Nothing buffered or in flight:
            # nothing to wait for.
            remaining = (
                await in_daemon_thread(lambda: self._flush(producer), "shoal-producer-flush")
                if len(producer)
                else 0
            )
        except asyncio.CancelledError:
            log.warning(
                "flushing the producer abandoned with %d records not acknowledged by the "
                "broker: they may or may not have been written",
                len(producer),
            )
            raise
        finally:
            self._running = False  # the poller ends within PRODUCER_POLL_S
        poller, self._poller = self._poller, None
        if poller is not None:
            await in_daemon_thread(poller.join, "shoal-producer-join")
        if remaining:
            raise TransportError(f"{remaining} records were not delivered before stop")

    def _flush(self, producer: Any) -> int:
        remaining: int = producer.flush(FLUSH_TIMEOUT_S)
        self._reports.hand_over()  # the reports flush served on this thread
        return remaining

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        await (await send_when_room(self, topic, value, key, headers))

    def send_nowait(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers
    ) -> asyncio.Future[None]:
        """Produce now and return the delivery's future: what ``send`` awaits, without a
        coroutine and a task per record for callers that send many (processor outputs, a
        feed). Raises TransportError at once when the record cannot even be queued."""
        if self._producer is None:
            raise TransportError("the transport is not started")
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()
        transactional = ACTIVE_TRANSACTION.get()
        if transactional is not None:
            # Part of an exactly-once fetch: its commit flushes it, and fails (aborting the
            # whole fetch) if this record cannot be delivered.
            try:
                transactional.produce(topic, value, key, headers=headers)
            except BufferError as exc:
                raise TransportBusy(f"cannot produce to {topic} now: {exc}") from exc
            except confluent_kafka.KafkaException as exc:
                raise TransportError(f"cannot produce to {topic}: {exc}") from exc
            delivered.set_result(None)
            return delivered
        reports = self._reports

        def on_delivery(err: Any, _msg: Any) -> None:
            reports.add(loop, delivered, topic, err)

        try:
            self._producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
        except BufferError as exc:  # librdkafka's queue is full: back-pressure
            raise TransportBusy(f"cannot produce to {topic} now: {exc}") from exc
        except confluent_kafka.KafkaException as exc:
            raise TransportError(f"cannot produce to {topic}: {exc}") from exc
        return delivered

    async def ensure_topics(self, topics: list[str], *, compacted: bool = False) -> None:
        await asyncio.to_thread(self._ensure_topics, topics, compacted)

    def _ensure_topics(self, topics: list[str], compacted: bool) -> None:
        # log_level 4: not the notice librdkafka logs when a short-lived admin client closes.
        admin = confluent_kafka.admin.AdminClient({"log_level": 4, **self._config})
        existing = admin.list_topics(timeout=METADATA_TIMEOUT_S).topics
        config = {"cleanup.policy": "compact"} if compacted else {}
        # -1: the cluster's default partition count and replication factor.
        wanted = [
            NewTopic(t, num_partitions=-1, replication_factor=-1, config=config)
            for t in dict.fromkeys(topics)
            if t not in existing
        ]
        for topic, future in admin.create_topics(wanted).items() if wanted else ():
            try:
                future.result(METADATA_TIMEOUT_S)
            except confluent_kafka.KafkaException as exc:
                # Another instance of the app may have created it a moment ago.
                if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TransportError(f"cannot create topic {topic}: {exc}") from exc
        # Every topic, not only those created here: another app may have created one a moment
        # ago, and the consumers about to join their groups need every broker to know it.
        wait_known_everywhere(self._config, list(dict.fromkeys(topics)))

    async def ping(self) -> None:
        if self._producer is None:
            raise TransportError("the transport is not started")
        try:
            await asyncio.to_thread(self._producer.list_topics, timeout=PING_TIMEOUT_S)
        except confluent_kafka.KafkaException as exc:
            raise TransportError(f"the broker does not answer: {exc}") from exc

    def consumer(
        self,
        topics: list[str],
        group: str,
        *,
        start_at_ms: int | None = None,
        rebalance: RebalanceListener | None = None,
    ) -> KafkaConsumer:
        """``start_at_ms``, ``rebalance``: see :class:`KafkaConsumer` (a replay from a point
        in time; a listener told of assignments and revocations)."""
        return KafkaConsumer(
            dict(self._config), topics, group, start_at_ms=start_at_ms, rebalance=rebalance
        )

    def queue_consumer(self, topics: list[str], group: str) -> KafkaQueueConsumer:
        """A consumer for a queue subscriber (issue 16): a share group, see kafka_queue."""
        return KafkaQueueConsumer(dict(self._config), topics, group)

    async def queue_delivery_limit(self, group: str, attempts: int) -> DeliveryLimit | None:
        """The share group's ``share.delivery.count.limit`` (QueueDeliveryLimits)."""
        limit = await asyncio.to_thread(share_delivery_count_limit, dict(self._config), group)
        if limit is None:
            return None
        return DeliveryLimit(
            limit,
            "the broker's share.delivery.count.limit for the group",
            "archived by the broker, never dead-lettered by the app",
            f"raise the group's limit (kafka-configs.sh --alter --entity-type groups "
            f"--entity-name {group} --add-config share.delivery.count.limit={attempts}; at "
            "most the broker's group.share.max.delivery.count.limit)",
        )

    def transactional_consumer(
        self, topics: list[str], group: str, *, rebalance: RebalanceListener | None = None
    ) -> KafkaTransactionalConsumer:
        """A consumer for an exactly-once subscriber (issue 14): see kafka_txn."""
        return KafkaTransactionalConsumer(dict(self._config), topics, group, rebalance=rebalance)

    async def read_topic(self, topic: str) -> list[Message]:
        return await asyncio.to_thread(self._read_topic, topic)

    def _read_topic(self, topic: str) -> list[Message]:
        consumer = confluent_kafka.Consumer(
            {**self._config, "group.id": "shoal-read-topic", "enable.auto.commit": False}
        )
        try:
            meta = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics.get(topic)
            if meta is None or meta.error is not None:
                return []
            ends: dict[int, int] = {}
            at: dict[int, int] = {}
            for partition in meta.partitions:
                low, high = consumer.get_watermark_offsets(
                    confluent_kafka.TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_S
                )
                if high > low:
                    ends[partition], at[partition] = high, low
            consumer.assign([confluent_kafka.TopicPartition(topic, p, o) for p, o in at.items()])
            out: list[Message] = []
            progress_at = time.monotonic()
            while ends:
                # Asking for no more than remain: consume() returns once it has them all.
                remaining = sum(end - at[p] for p, end in ends.items())
                msgs = consumer.consume(min(READ_BATCH_MAX, remaining), READ_POLL_S)
                if msgs:
                    progress_at = time.monotonic()
                elif time.monotonic() - progress_at > READ_STALL_S_MAX:
                    raise TransportError(f"reading {topic} stalled before its end offsets")
                for msg in msgs:
                    partition, offset = msg.partition(), msg.offset()
                    if msg.error() is not None or partition is None or offset is None:
                        continue
                    end = ends.get(partition)
                    if end is None or offset >= end:
                        continue
                    out.append(_message(msg))
                    at[partition] = offset + 1
                    if offset + 1 >= end:
                        del ends[partition]
                if ends:
                    # A transaction's commit or abort marker takes an offset but is never
                    # returned as a record: a topic written with transactions can end in one,
                    # so the end is reached when the position is, not the last record.
                    positions = [confluent_kafka.TopicPartition(topic, p) for p in ends]
                    for tp in consumer.position(positions):
                        at[tp.partition] = max(at[tp.partition], tp.offset)
                        if tp.offset >= ends[tp.partition]:
                            del ends[tp.partition]
            return out
        finally:
            consumer.close()


Report = tuple["asyncio.Future[None]", str, Any]


class _DeliveryReports:
    """Delivery reports collected on the thread that serves them (the poller's poll, stop's
    flush) and handed to each future's loop in one call per batch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[asyncio.AbstractEventLoop, list[Report]] = {}

    def add(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None], topic: str, err: Any
    ) -> None:
        with self._lock:
            self._pending.setdefault(loop, []).append((future, topic, err))

    def hand_over(self) -> None:
        with self._lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, {}
        for loop, reports in pending.items():
            try:
                loop.call_soon_threadsafe(_settle, reports)
            except RuntimeError:
                pass  # the loop is closed: nobody awaits these any more


def _settle(reports: list[Report]) -> None:
    for future, topic, err in reports:
        if future.done():
            continue
        if err is None:
            future.set_result(None)
        else:
            future.set_exception(TransportError(f"delivery to {topic} failed: {err}"))
