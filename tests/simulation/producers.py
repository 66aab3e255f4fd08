"""Simulated producers: idempotent ones (InitProducerId, then sequences, retrying a batch until
its outcome is known, as Kafka clients do) and plain ones (no producer id, acks=all or 1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from shoal.protocol import ApiKey, ErrorCode
from shoal.records import SimpleRecord, build_batch
from tests.simulation.node import InFlight

PRODUCE_VERSION: Final = 9
INIT_PRODUCER_ID_VERSION: Final = 4
PRODUCE_TIMEOUT_MS: Final = 30_000

RETRIABLE: Final = frozenset(
    {
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
    }
)
"""Answers after which a client retries the same batch (Kafka marks them retriable)."""


@dataclass
class Pending:
    partition: int
    batch: bytes
    acks: int


@dataclass
class Producer:
    name: str
    idempotent: bool
    producer_id: int = -1
    epoch: int = -1
    next_sequence: dict[int, int] = field(default_factory=dict)
    pending: Pending | None = None
    """The batch sent and not yet answered for good: an idempotent producer resends it."""
    flight: InFlight | None = None
    values: int = 0

    @property
    def ready(self) -> bool:
        return not self.idempotent or self.producer_id >= 0

    def new_batch(self, partition: int, now_ms: int, count: int, acks: int) -> Pending:
        records = []
        for _ in range(count):
            self.values += 1
            records.append(
                SimpleRecord(key=self.name.encode(), value=f"{self.name}-{self.values}".encode())
            )
        sequence = self.next_sequence.get(partition, 0) if self.idempotent else -1
        batch = build_batch(
            records,
            base_timestamp=now_ms,
            producer_id=self.producer_id if self.idempotent else -1,
            producer_epoch=self.epoch if self.idempotent else -1,
            base_sequence=sequence,
        )
        return Pending(partition, batch, acks)


def init_producer_id_values() -> dict[str, Any]:
    return {"transactional_id": None, "transaction_timeout": 60_000}


def produce_values(topic: str, pending: Pending) -> dict[str, Any]:
    return {
        "transactional_id": None,
        "acks": pending.acks,
        "timeout": PRODUCE_TIMEOUT_MS,
        "topic_data": [
            {
                "name": topic,
                "partition_data": [{"index": pending.partition, "records": pending.batch}],
            }
        ],
    }


INIT_PRODUCER_ID = (int(ApiKey.INIT_PRODUCER_ID), INIT_PRODUCER_ID_VERSION)
PRODUCE = (int(ApiKey.PRODUCE), PRODUCE_VERSION)
