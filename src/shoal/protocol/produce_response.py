"""The Produce response (api key 0, v3-v13), framed by shoal: one small fixed-shape answer per
Produce request, cheaper written field by field than through kio's generic writer.

Layout (``[]`` arrays, compact and with tagged fields in flexible versions v9+)::

    responses[ name string (v0-12) | topic_id uuid (v13)
               partition_responses[ index i32 | error_code i16 | base_offset i64
                                    log_append_time_ms i64 | log_start_offset i64 (v5)
                                    record_errors[batch_index i32 | message nullable] (v8)
                                    error_message nullable string (v8) | tags (v9) ]
               tags (v9) ]
    throttle_time_ms i32 | tags (v9)

No tagged field is sent: current_leader and node_endpoints (v10+) go only with
NOT_LEADER_OR_FOLLOWER, which a single node never answers. A test compares every version with
kio's encoding.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from shoal.buffers import Buffer
from shoal.protocol.errors import EncodeError
from shoal.protocol.frame_writer import FramedResponse, FrameWriter
from shoal.protocol.headers import encode_response_header
from shoal.protocol.versions import ApiKey

PRODUCE_MIN_VERSION: Final = 3
PRODUCE_MAX_VERSION: Final = 13
FIRST_FLEXIBLE: Final = 9
FIRST_WITH_TOPIC_ID: Final = 13
FIRST_WITH_LOG_START: Final = 5
FIRST_WITH_ERROR_DETAILS: Final = 8

_PARTITION: Final = struct.Struct(">ihqq")  # index, error, base offset, log append time
_I32: Final = struct.Struct(">i")
_I64: Final = struct.Struct(">q")


@dataclass(frozen=True, slots=True)
class RecordError:
    batch_index: int
    """The index of the record in the batch that was refused."""
    message: str | None = None


@dataclass(frozen=True, slots=True)
class ProducedPartition:
    index: int
    error_code: int = 0
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    error_message: str | None = None
    record_errors: Sequence[RecordError] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class ProducedTopic:
    name: str | None
    """Sent up to v12 (a topic named by an unknown id has none: sent as "")."""
    topic_id: uuid.UUID | None
    """Sent from v13 (all zeros when unknown)."""
    partitions: Sequence[ProducedPartition]


@dataclass(frozen=True, slots=True)
class ProduceResponse(FramedResponse):
    api_key = ApiKey.PRODUCE

    topics: Sequence[ProducedTopic]
    throttle_time_ms: int = 0

    def encode_frame(self, correlation_id: int, version: int) -> list[Buffer]:
        if not PRODUCE_MIN_VERSION <= version <= PRODUCE_MAX_VERSION:
            raise EncodeError(f"Produce v{version} is not one shoal serves")
        writer = FrameWriter(flexible=version >= FIRST_FLEXIBLE)
        writer.add(encode_response_header(correlation_id, flexible=writer.flexible))
        writer.array_length(len(self.topics))
        for topic in self.topics:
            if version >= FIRST_WITH_TOPIC_ID:
                writer.add((topic.topic_id or _ZERO_ID).bytes)
            else:
                writer.string(topic.name or "")
            writer.array_length(len(topic.partitions))
            for partition in topic.partitions:
                _write_partition(writer, partition, version)
            writer.tags()
        writer.add(_I32.pack(self.throttle_time_ms))
        writer.tags()
        return writer.frame()


def _write_partition(writer: FrameWriter, p: ProducedPartition, version: int) -> None:
    writer.add(_PARTITION.pack(p.index, p.error_code, p.base_offset, p.log_append_time_ms))
    if version >= FIRST_WITH_LOG_START:
        writer.add(_I64.pack(p.log_start_offset))
    if version >= FIRST_WITH_ERROR_DETAILS:
        writer.array_length(len(p.record_errors))
        for error in p.record_errors:
            writer.add(_I32.pack(error.batch_index))
            writer.nullable_string(error.message)
            writer.tags()
        writer.nullable_string(p.error_message)
    writer.tags()


_ZERO_ID: Final = uuid.UUID(int=0)
