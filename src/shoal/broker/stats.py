"""Counters the broker keeps about its own work, read by the metrics endpoint.

Plain integers bumped on the event loop thread (no locks): a scrape runs on the same loop.
One dict lookup per topic and a few additions per batch is all the hot path pays (see
:mod:`shoal.metrics.core`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from shoal.buffers import Buffer
from shoal.metrics.core import Histogram, bucket_bounds
from shoal.protocol.fetch_response import FetchedTopic

BATCH_BYTES_BUCKETS: Final = bucket_bounds(128, 4.0, 9)
"""128 B (one small record) to 8 MiB (above the default 1 MiB message.max.bytes, for topics
that raise it)."""

_BATCH_LENGTH_AT: Final = 8
_RECORD_COUNT_AT: Final = 57
_RECORD_COUNT_END: Final = _RECORD_COUNT_AT + 4
_LOG_OVERHEAD: Final = 12
"""baseOffset (8) and batchLength (4): the bytes of a batch before what batchLength counts."""
_I32: Final = struct.Struct(">i")

FETCH_WAIT_BUCKETS_S: Final = bucket_bounds(0.001, 2.0, 14)
"""1 ms to about 8 s: a long poll lasts at most fetch.max.wait.ms (500 ms by default)."""


class TopicTraffic:
    """Bytes and records written to and read from one topic."""

    __slots__ = ("bytes_in", "bytes_out", "records_in", "records_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.records_in = 0
        self.bytes_out = 0
        self.records_out = 0


@dataclass(slots=True)
class BrokerStats:
    fetch_reads_off_loop: int = 0
    """Fetches whose records were not all in the page cache, so were read on a worker thread
    rather than on the event loop (a consumer catching up from cold segments)."""
    topics: dict[str, TopicTraffic] = field(default_factory=dict)
    """By topic name; a deleted topic's counters go with it (as Kafka drops its topic meters),
    so topic churn does not grow this; a topic created again under the name starts from 0."""
    produce_batch_bytes: Histogram = field(default_factory=lambda: Histogram(BATCH_BYTES_BUCKETS))
    """Size of each batch appended (Produce and the group coordinator's own writes)."""
    fetch_wait_s: Histogram = field(default_factory=lambda: Histogram(FETCH_WAIT_BUCKETS_S))
    """Time each Fetch spent long-polling for min_bytes (zero when it answered at once)."""

    def traffic(self, topic: str) -> TopicTraffic:
        traffic = self.topics.get(topic)
        if traffic is None:
            traffic = self.topics[topic] = TopicTraffic()
        return traffic

    def appended(self, topic: str, batch_bytes: int, records: int) -> None:
        traffic = self.topics.get(topic) or self.traffic(topic)
        traffic.bytes_in += batch_bytes
        traffic.records_in += records
        self.produce_batch_bytes.observe(batch_bytes)

    def fetched(self, topics: Sequence[FetchedTopic]) -> None:
        """Count what a Fetch response carries out, per topic (the records from each batch's
        header: a walk of one header per batch, never of the records)."""
        for topic in topics:
            if topic.name is None:
                continue
            traffic = None
            for partition in topic.partitions:
                data = partition.records
                if not data:
                    continue
                if traffic is None:
                    traffic = self.topics.get(topic.name) or self.traffic(topic.name)
                traffic.bytes_out += len(data)
                traffic.records_out += _record_count(data)


def _record_count(data: Buffer) -> int:
    """Records in the whole batches of ``data`` (a Fetch's slice of a log)."""
    total = 0
    position = 0
    size = len(data)
    while position + _RECORD_COUNT_END <= size:
        length = _I32.unpack_from(data, position + _BATCH_LENGTH_AT)[0]
        if length <= 0:  # never in a valid log; stop rather than loop
            break
        total += _I32.unpack_from(data, position + _RECORD_COUNT_AT)[0]
        position += length + _LOG_OVERHEAD
    return total
