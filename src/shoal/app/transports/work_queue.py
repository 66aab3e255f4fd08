"""What the queue consumers (``queue=True``) of the work-queue transports share: RabbitMQ,
Redis Streams and NATS JetStream hand out deliveries already, so their queue consumers are
their group consumers with ``settle`` (each delivery on its own) in place of ``commit`` (by
prefix), and the delivery count on ``Message.delivery_count``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Generic, TypeVar

from shoal.app.message import Message
from shoal.app.transport import Acknowledgement, TransportError
from shoal.app.transports.ledger import DeliveryLedger

T = TypeVar("T")


class Settlement(Generic[T]):
    """One fetch's deliveries sorted by outcome, taken out of the ledger; a delivery of the
    fetch given no outcome is released (delivered again: the safe outcome)."""

    def __init__(
        self,
        ledger: DeliveryLedger[T],
        fetched: list[Message],
        outcomes: list[tuple[Message, Acknowledgement]],
    ) -> None:
        decided = {(m.topic, m.offset): kind for m, kind in outcomes}
        by_kind: dict[tuple[str, Acknowledgement], list[int]] = defaultdict(list)
        for message in fetched:
            kind = decided.get((message.topic, message.offset), Acknowledgement.RELEASE)
            by_kind[(message.topic, kind)].append(message.offset)
        self.deliveries: dict[tuple[str, Acknowledgement], list[T]] = {
            key: ledger.take(key[0], numbers) for key, numbers in by_kind.items()
        }

    def of(self, kind: Acknowledgement) -> dict[str, list[T]]:
        """Topic -> the deliveries settled as ``kind``."""
        return {topic: ds for (topic, k), ds in self.deliveries.items() if k is kind and ds}


class FetchGuard:
    """A queue consumer's last fetch, which must be settled before the next one (as a Kafka
    share consumer in explicit mode requires; the runner always does)."""

    def __init__(self) -> None:
        self.fetched: list[Message] = []

    def check(self) -> None:
        if self.fetched:
            raise TransportError("fetch before the last fetch's records were settled")

    def hold(self, records: list[Message], count_header: str | None = None) -> list[Message]:
        """Keep ``records`` until they are settled; ``count_header``: the header in which the
        group consumer put each record's delivery count (1 when absent), moved to
        ``Message.delivery_count``."""
        if count_header is not None:
            for message in records:
                count = message.header(count_header)
                message.delivery_count = int(count) if count else 1
        self.fetched = list(records)
        return records

    def take(self) -> list[Message]:
        fetched, self.fetched = self.fetched, []
        return fetched
