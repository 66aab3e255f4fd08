"""The Fetch response (api key 1, v4-v18), framed by shoal so record bytes are never copied.

kio's generic writer copies every partition's records into its output and the frame copies
them again; for Fetch, where records are nearly all of the bytes, that was most of the cost.
:meth:`FetchResponse.encode_frame` instead returns the frame as a list of buffers: small
``bytes`` for the framing between partitions, and each partition's records exactly as the
caller handed them (the bytes read from a segment). The server writes the list as it is.

Layout (``[]`` arrays, compact in flexible versions v12+; ``?`` from the version shown)::

    throttle_time_ms i32 | error_code i16 (v7) | session_id i32 (v7)
    responses[ topic string (v0-12) | topic_id uuid (v13)
               partitions[ partition_index i32 | error_code i16 | high_watermark i64
                           last_stable_offset i64 | log_start_offset i64 (v5)
                           aborted_transactions[producer_id i64 | first_offset i64] nullable
                           preferred_read_replica i32 (v11) | records bytes nullable
                           tagged fields (v12) ]
               tagged fields (v12) ]
    tagged fields (v12)

Tagged fields (v12+): a partition's diverging_epoch (tag 0) when the client's last fetched
epoch ended before its fetch offset (KIP-320, after a crash erased records), and, from v16
(KIP-951, as KafkaApis.handleFetchRequest sets them), its current_leader (tag 1) with
FENCED_LEADER_EPOCH or NOT_LEADER_OR_FOLLOWER, along with the response's node_endpoints (tag 0
of the top level: where that leader is); snapshot_id concerns KRaft replicas. A test compares
every version with kio's encoding.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from shoal.buffers import Buffer
from shoal.protocol.errors import EncodeError
from shoal.protocol.frame_writer import FramedResponse, FrameWriter
from shoal.protocol.headers import encode_response_header, encode_uvarint
from shoal.protocol.versions import ApiKey

FETCH_MIN_VERSION: Final = 4
FETCH_MAX_VERSION: Final = 18
FIRST_FLEXIBLE: Final = 12
FIRST_WITH_TOPIC_ID: Final = 13
FIRST_WITH_LOG_START: Final = 5
FIRST_WITH_SESSION: Final = 7
FIRST_WITH_READ_REPLICA: Final = 11

_I32: Final = struct.Struct(">i")
_PARTITION_OFFSETS: Final = struct.Struct(">ihqq")  # index, error, high watermark, LSO
_I64: Final = struct.Struct(">q")
_ABORTED: Final = struct.Struct(">qq")
_TOP: Final = struct.Struct(">ihi")  # throttle, error, session
_EPOCH_END: Final = struct.Struct(">iqB")  # epoch, end offset, no tags
_LEADER: Final = struct.Struct(">iiB")  # leader id, leader epoch, no tags
_DIVERGING_TAG: Final = 0
_CURRENT_LEADER_TAG: Final = 1
_NODE_ENDPOINTS_TAG: Final = 0
FIRST_WITH_NODE_ENDPOINTS: Final = 16
"""The first version with node_endpoints, and the first Kafka sets current_leader in."""


@dataclass(frozen=True, slots=True)
class AbortedTransaction:
    producer_id: int
    first_offset: int


@dataclass(frozen=True, slots=True)
class FetchedPartition:
    partition_index: int
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    records: Buffer
    aborted_transactions: Sequence[AbortedTransaction] | None = None
    preferred_read_replica: int = -1
    diverging_epoch: tuple[int, int] | None = None
    """``(epoch, end offset)`` where the client's log diverges from this one (v12+)."""
    current_leader: tuple[int, int] | None = None
    """``(leader id, leader epoch)``: the caller sets it with FENCED_LEADER_EPOCH from v16."""


@dataclass(frozen=True, slots=True)
class NodeEndpoint:
    """Where a node named in a partition's current_leader is reached (v16+)."""

    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class FetchedTopic:
    name: str | None
    """The topic's name (sent up to v12); None for a topic asked for by an unknown id."""
    topic_id: uuid.UUID
    """The topic's id (sent from v13); all zeros for a topic asked for by an unknown name."""
    partitions: Sequence[FetchedPartition]


@dataclass(frozen=True, slots=True)
class FetchResponse(FramedResponse):
    """A Fetch response the server frames itself (see the module docstring)."""

    api_key = ApiKey.FETCH

    topics: Sequence[FetchedTopic]
    throttle_time_ms: int = 0
    error_code: int = 0
    session_id: int = 0
    node_endpoints: Sequence[NodeEndpoint] = ()
    """Sent from v16 only (tag 0 of the top level)."""

    @property
    def records_bytes(self) -> int:
        return sum(len(p.records) for t in self.topics for p in t.partitions)

    def encode_frame(self, correlation_id: int, version: int) -> list[Buffer]:
        """The whole frame (size prefix first) as buffers to write in order."""
        if not FETCH_MIN_VERSION <= version <= FETCH_MAX_VERSION:
            raise EncodeError(f"Fetch v{version} is not one shoal serves")
        writer = FrameWriter(flexible=version >= FIRST_FLEXIBLE)
        writer.add(encode_response_header(correlation_id, flexible=writer.flexible))
        if version >= FIRST_WITH_SESSION:
            writer.add(_TOP.pack(self.throttle_time_ms, self.error_code, self.session_id))
        else:
            writer.add(_I32.pack(self.throttle_time_ms))
        writer.array_length(len(self.topics))
        for topic in self.topics:
            if version >= FIRST_WITH_TOPIC_ID:
                writer.add(topic.topic_id.bytes)
            else:
                writer.string(topic.name or "")
            writer.array_length(len(topic.partitions))
            for partition in topic.partitions:
                _write_partition(writer, partition, version)
            writer.tags()
        if version >= FIRST_WITH_NODE_ENDPOINTS and self.node_endpoints:
            writer.add(_top_tags(self.node_endpoints))
        else:
            writer.tags()
        return writer.frame()


def _top_tags(endpoints: Sequence[NodeEndpoint]) -> bytes:
    """The top level's tagged fields: node_endpoints only (count 1, tag, size, value)."""
    value = bytearray(encode_uvarint(len(endpoints) + 1))
    for e in endpoints:
        host = e.host.encode()
        value += _I32.pack(e.node_id) + encode_uvarint(len(host) + 1) + host + _I32.pack(e.port)
        if e.rack is None:
            value += encode_uvarint(0)
        else:
            rack = e.rack.encode()
            value += encode_uvarint(len(rack) + 1) + rack
        value += encode_uvarint(0)  # the entry's own tagged fields: none
    tag = encode_uvarint(_NODE_ENDPOINTS_TAG) + encode_uvarint(len(value))
    return encode_uvarint(1) + tag + bytes(value)


def _write_partition(writer: FrameWriter, p: FetchedPartition, version: int) -> None:
    writer.add(
        _PARTITION_OFFSETS.pack(
            p.partition_index, p.error_code, p.high_watermark, p.last_stable_offset
        )
    )
    if version >= FIRST_WITH_LOG_START:
        writer.add(_I64.pack(p.log_start_offset))
    if p.aborted_transactions is None:
        writer.null_array()
    else:
        writer.array_length(len(p.aborted_transactions))
        for aborted in p.aborted_transactions:
            writer.add(_ABORTED.pack(aborted.producer_id, aborted.first_offset))
            writer.tags()
    if version >= FIRST_WITH_READ_REPLICA:
        writer.add(_I32.pack(p.preferred_read_replica))
    writer.records(p.records)
    if writer.flexible and (p.diverging_epoch is not None or p.current_leader is not None):
        writer.add(_partition_tags(p))
    else:
        writer.tags()


def _partition_tags(p: FetchedPartition) -> bytes:
    """The partition's tagged fields, in tag order: count, then (tag, size, value) each."""
    tagged = []
    if p.diverging_epoch is not None:
        tagged.append((_DIVERGING_TAG, _EPOCH_END.pack(*p.diverging_epoch, 0)))
    if p.current_leader is not None:
        tagged.append((_CURRENT_LEADER_TAG, _LEADER.pack(*p.current_leader, 0)))
    out = [encode_uvarint(len(tagged))]
    for tag, value in tagged:
        out += [encode_uvarint(tag), encode_uvarint(len(value)), value]
    return b"".join(out)
