"""Exactly-once subscribers on Kafka: a consumer with its own transactional producer.

Each fetch is one transaction: the handler's outputs (and any record moved to a retry or
dead-letter topic) are produced by this consumer's transactional producer, then the fetch's
consumed offsets are added with ``send_offsets_to_transaction`` (the group's metadata, so the
broker refuses the commit of a consumer a rebalance has replaced: KIP-447 fencing) and the
transaction commits. Records are read with ``isolation.level=read_committed``.

The transactional id is unique per consumer instance, as Kafka Streams' exactly_once_v2 does
it: fencing of a zombie comes from the group generation carried by the offsets, not from a
shared transactional id. A static member (``group.instance.id``) keeps one id across restarts,
``shoal-eos-<group>-<instance>``, as a Streams instance keeps its process id: the restarted
instance's ``init_transactions`` fences its predecessor's producer and the coordinator aborts the
transaction a crash left open at once. With a fresh id per start, that transaction stayed open
until ``transaction.timeout.ms`` (a minute), holding back the last stable offset of every
output partition it had written, so read_committed consumers downstream saw nothing newer.

What a fetch sent is committed or aborted as a whole; after an abort
the consumer is closed (the App starts a new one), so the records fetched since the last
commit are read again from the committed offsets.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from typing import Any

import confluent_kafka

from shoal.app.transport import RebalanceListener, TopicPartition, TransportError
from shoal.app.transports.daemon_call import in_daemon_thread
from shoal.app.transports.kafka_consumer import PRODUCER_DEFAULTS, KafkaConsumer

ACTIVE_TRANSACTION: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "shoal_kafka_transaction", default=None
)
"""The transactional producer of the exactly-once fetch being handled in this task: sends made
meanwhile (``KafkaTransport.send``) join its transaction."""

TRANSACTION_TIMEOUT_MS = 60_000
"""librdkafka's default: a fetch whose handlers run longer than this is aborted by the
coordinator, and its commit then fails (the records are read again)."""
TXN_CALL_TIMEOUT_S = 30.0
"""Bound on each transactional producer call (init, send offsets, commit, abort)."""


class KafkaTransactionalConsumer(KafkaConsumer):
    def __init__(
        self,
        config: dict[str, Any],
        topics: list[str],
        group: str,
        *,
        rebalance: RebalanceListener | None = None,
    ) -> None:
        super().__init__(
            {**config, "isolation.level": "read_committed"}, topics, group, rebalance=rebalance
        )
        instance = config.get("group.instance.id") or uuid.uuid4()
        self._producer_config = {
            **PRODUCER_DEFAULTS,
            **config,
            "transactional.id": f"shoal-eos-{group}-{instance}",
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
            "enable.idempotence": True,
            "acks": "all",
        }
        self._producer: Any = None
        self._token: contextvars.Token[Any] | None = None

    async def start(self) -> None:
        await super().start()
        self._producer = confluent_kafka.Producer(self._producer_config)
        await self._txn_call(self._producer.init_transactions, TXN_CALL_TIMEOUT_S)

    async def _txn_call(self, fn: Any, *args: Any) -> None:
        try:
            await asyncio.to_thread(fn, *args)
        except confluent_kafka.KafkaException as exc:
            raise TransportError(f"transaction failed: {exc.args[0]}") from exc

    async def begin(self) -> None:
        await self._txn_call(self._producer.begin_transaction)
        self._token = ACTIVE_TRANSACTION.set(self._producer)

    async def commit_transaction(self, offsets: dict[TopicPartition, int]) -> None:
        self._leave()
        try:
            if offsets:
                tps = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
                metadata = self._group_metadata
                if metadata is None:  # no rebalance listener: no callback can hold it up
                    metadata = self._consumer.consumer_group_metadata()
                await self._txn_call(
                    self._producer.send_offsets_to_transaction, tps, metadata, TXN_CALL_TIMEOUT_S
                )
            await self._txn_call(self._producer.commit_transaction, TXN_CALL_TIMEOUT_S)
        except TransportError:
            await self.abort()
            raise

    async def abort(self) -> None:
        self._leave()
        try:
            await self._txn_call(self._producer.abort_transaction, TXN_CALL_TIMEOUT_S)
        except TransportError:
            pass  # a fenced or failed producer: the coordinator aborts its transaction

    def _leave(self) -> None:
        if self._token is not None:
            ACTIVE_TRANSACTION.reset(self._token)
            self._token = None

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        del offsets  # offsets commit only inside transactions (commit_transaction)

    async def close(self) -> None:
        await super().close()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            # Nothing should be buffered (every fetch ended in a commit or an abort); a daemon
            # thread still, so that App.stop can abandon it like the consumer's close.
            await in_daemon_thread(lambda: producer.flush(TXN_CALL_TIMEOUT_S), "shoal-txn-flush")
