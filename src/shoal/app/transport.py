"""The one I/O seam of the framework: a transport moves bytes; the App does everything else.

Every transport passes ``tests/app/transport_suite.py``. Offsets handed to ``commit`` are the
*next* offsets to read, as in Kafka.
"""

from __future__ import annotations

from typing import Protocol

from shoal.app.message import Headers, Message

TopicPartition = tuple[str, int]


class TransportError(Exception):
    """The transport failed to send, fetch or commit (translated from the client's errors)."""


class TransportConsumer(Protocol):
    async def start(self) -> None: ...

    async def fetch(self, max_records: int, timeout_s: float) -> list[Message]:
        """Up to ``max_records`` records, waiting at most ``timeout_s`` for the first one."""
        ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        """Return once the record is durably accepted (acks=all on Kafka)."""
        ...

    def consumer(self, topics: list[str], group: str) -> TransportConsumer: ...

    async def read_topic(self, topic: str) -> list[Message]:
        """Every record of ``topic`` present when called, all partitions, in offset order per
        partition; no group and no commit (redrive and inspection use it)."""
        ...
