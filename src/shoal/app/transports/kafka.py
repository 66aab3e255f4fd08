"""The Kafka transport: confluent-kafka (librdkafka), against shoal or Apache Kafka alike.

librdkafka calls block, so they run on a worker thread: one single-thread executor per
consumer (a consumer's calls are then never concurrent), and one poll thread for the
producer's delivery reports, which resolve asyncio futures through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import confluent_kafka
import confluent_kafka.admin
from confluent_kafka.cimpl import NewTopic

from shoal.app.message import Headers, Message
from shoal.app.transport import TopicPartition, TransportError

log = logging.getLogger("shoal.app.transports.kafka")

PRODUCER_POLL_S = 0.05
"""How long the delivery-report thread blocks in poll; also how long stop() may wait for it."""
FLUSH_TIMEOUT_S = 30.0
METADATA_TIMEOUT_S = 10.0
PING_TIMEOUT_S = 2.0
READ_IDLE_POLLS_MAX = 30
"""Empty one-second polls before read_topic gives up: the end offsets were taken from the
broker, so records are there; a long silence means something is wrong, not slow."""


def _message(msg: Any) -> Message:
    # One call per record on the hot path: plain attribute calls, no per-record allocations
    # beyond the Message (and the headers list when the record has headers).
    raw_headers = msg.headers()
    headers = (
        [(k, b"" if v is None else v) for k, v in raw_headers] if raw_headers is not None else []
    )
    timestamp_ms = msg.timestamp()[1]
    return Message(
        msg.topic(),
        msg.partition(),
        msg.offset(),
        msg.key(),
        msg.value() or b"",
        headers,
        timestamp_ms if timestamp_ms > 0 else 0,
    )


class KafkaConsumer:
    def __init__(self, config: dict[str, Any], topics: list[str], group: str) -> None:
        self._config = {
            **config,
            "group.id": group,
            # Commits are the App's: only offsets whose handlers finished (at-least-once).
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "allow.auto.create.topics": True,
        }
        self._topics = topics
        self._consumer: Any = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"shoal-consumer-{group}")
        self._paused = False
        # Records a poll returned while paused (a rebalance hands over unpaused partitions):
        # they are delivered after resume, never dropped, or a later commit would skip them.
        self._held: list[Message] = []
        self._assignment: list[TopicPartition] = []
        # The next poll, started on the consumer's thread as soon as a batch is handed out:
        # librdkafka waits for the broker without the GIL while the App handles the batch.
        self._next: asyncio.Future[list[Any]] | None = None
        self._to_commit: dict[TopicPartition, int] = {}
        """The latest offsets handed to commit(): committed for sure on close."""

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def start(self) -> None:
        self._consumer = await self._call(confluent_kafka.Consumer, self._config)
        await self._call(self._consumer.subscribe, self._topics)

    def _consume(self, max_records: int, timeout_s: float) -> list[Any]:
        # Runs on the consumer's thread. Pausing every assigned partition before each poll
        # covers partitions a rebalance just handed over; polling on keeps the membership.
        if self._paused:
            self._consumer.pause(self._consumer.assignment())
        # consume(n, t) waits the whole timeout unless n records arrive, which at low rates
        # would add up to t of latency to every record: take what is there, else wait for
        # the first record only, then take what came with it.
        msgs = self._consumer.consume(max_records, 0)
        if not msgs:
            msgs = self._consumer.consume(1, timeout_s)
            if msgs and max_records > 1:
                msgs.extend(self._consumer.consume(max_records - 1, 0))
        self._assignment = [(tp.topic, tp.partition) for tp in self._consumer.assignment()]
        return list(msgs)

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        if not self._paused and self._held:
            held, self._held = self._held[:max_records], self._held[max_records:]
            return held
        if self._next is not None:
            pending, self._next = self._next, None
            msgs = await pending
        else:
            msgs = await self._call(self._consume, max_records, timeout_s)
        out = []
        for msg in msgs:
            error = msg.error()
            if error is None:
                out.append(_message(msg))
            elif error.fatal():
                raise TransportError(f"consumer failed: {error}")
            # Other errors (a topic not yet created, a broker reconnecting) are transient and
            # reported by librdkafka again if they persist.
        if self._paused:
            self._held.extend(out)
            return []
        if out:
            loop = asyncio.get_running_loop()
            self._next = loop.run_in_executor(self._executor, self._consume, max_records, timeout_s)
        return out

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        if self._paused and self._consumer is not None:
            self._paused = False
            consumer = self._consumer
            self._executor.submit(lambda: consumer.resume(consumer.assignment()))

    def assignment(self) -> list[TopicPartition]:
        return list(self._assignment)

    async def lag(self) -> dict[TopicPartition, int]:
        if self._consumer is None:
            return {}
        return dict(await self._call(self._lag))

    def _lag(self) -> dict[TopicPartition, int]:
        assigned = self._consumer.assignment()
        if not assigned:
            return {}
        out: dict[TopicPartition, int] = {}
        for tp in self._consumer.committed(assigned, timeout=METADATA_TIMEOUT_S):
            _, high = self._consumer.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT_S)
            # No commit yet (offset < 0): everything from the log start is still to do, which
            # the high watermark over-counts only by records already deleted by retention.
            committed = tp.offset if tp.offset >= 0 else 0
            out[(tp.topic, tp.partition)] = max(high - committed, 0)
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Queue an asynchronous commit and return at once; ``close`` commits the latest
        offsets synchronously. A commit that fails or is overtaken by a rebalance only means
        those records are read again by the next owner: at-least-once holds."""
        if not offsets:
            return
        self._to_commit.update(offsets)
        tps = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        # Not awaited: the consumer's thread may be in the next poll (prefetch), and the App
        # must not wait for that poll to go on handling records.
        self._executor.submit(self._commit_now, tps, False)

    def _commit_now(self, tps: list[Any], synchronous: bool) -> None:
        try:
            self._consumer.commit(offsets=tps, asynchronous=not synchronous)
        except confluent_kafka.KafkaException as exc:
            log.warning("commit of %s failed (those records will be read again): %s", tps, exc)

    async def close(self) -> None:
        if self._next is not None:
            # Records prefetched but never handed out: not committed, so the partition's next
            # owner reads them again.
            with contextlib.suppress(Exception):
                await self._next
            self._next = None
        if self._consumer is not None:
            if self._to_commit:
                # The last word before leaving the group: everything finished, synchronously.
                tps = [
                    confluent_kafka.TopicPartition(t, p, o) for (t, p), o in self._to_commit.items()
                ]
                await self._call(self._commit_now, tps, True)
            await self._call(self._consumer.close)
            self._consumer = None
        self._executor.shutdown(wait=True)


class KafkaTransport:
    def __init__(self, bootstrap_servers: str, **config: Any) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, **config}
        self._producer: Any = None
        self._poller: threading.Thread | None = None
        self._running = False

    @property
    def config(self) -> dict[str, Any]:
        """The librdkafka settings every client of this transport starts from (a copy)."""
        return dict(self._config)

    async def start(self) -> None:
        self._producer = confluent_kafka.Producer(
            {**self._config, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
        )
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="shoal-producer", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(PRODUCER_POLL_S)

    async def stop(self) -> None:
        if self._producer is None:
            return
        remaining = await asyncio.to_thread(self._producer.flush, FLUSH_TIMEOUT_S)
        self._running = False
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
        self._producer = None
        if remaining:
            raise TransportError(f"{remaining} records were not delivered before stop")

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        if self._producer is None:
            raise TransportError("the transport is not started")
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def settle(err: Any, _msg: Any) -> None:
            if delivered.done():
                return
            if err is None:
                delivered.set_result(None)
            else:
                delivered.set_exception(TransportError(f"delivery to {topic} failed: {err}"))

        def on_delivery(err: Any, msg: Any) -> None:
            loop.call_soon_threadsafe(settle, err, msg)

        try:
            self._producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
        except (BufferError, confluent_kafka.KafkaException) as exc:
            raise TransportError(f"cannot produce to {topic}: {exc}") from exc
        await delivered

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
        if not wanted:
            return
        for topic, future in admin.create_topics(wanted).items():
            try:
                future.result(METADATA_TIMEOUT_S)
            except confluent_kafka.KafkaException as exc:
                # Another instance of the app may have created it a moment ago.
                if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TransportError(f"cannot create topic {topic}: {exc}") from exc

    async def ping(self) -> None:
        if self._producer is None:
            raise TransportError("the transport is not started")
        try:
            await asyncio.to_thread(self._producer.list_topics, timeout=PING_TIMEOUT_S)
        except confluent_kafka.KafkaException as exc:
            raise TransportError(f"the broker does not answer: {exc}") from exc

    def consumer(self, topics: list[str], group: str) -> KafkaConsumer:
        return KafkaConsumer(dict(self._config), topics, group)

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
            assignment = []
            for partition in meta.partitions:
                low, high = consumer.get_watermark_offsets(
                    confluent_kafka.TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_S
                )
                if high > low:
                    ends[partition] = high
                    assignment.append(confluent_kafka.TopicPartition(topic, partition, low))
            consumer.assign(assignment)
            out: list[Message] = []
            idle_polls = 0
            while ends:
                msgs = consumer.consume(500, 1.0)
                idle_polls = 0 if msgs else idle_polls + 1
                if idle_polls > READ_IDLE_POLLS_MAX:
                    raise TransportError(f"reading {topic} stalled before its end offsets")
                for msg in msgs:
                    partition, offset = msg.partition(), msg.offset()
                    if msg.error() is not None or partition is None or offset is None:
                        continue
                    end = ends.get(partition)
                    if end is None or offset >= end:
                        continue
                    out.append(_message(msg))
                    if offset + 1 >= end:
                        del ends[partition]
            return out
        finally:
            consumer.close()
