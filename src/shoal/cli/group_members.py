"""Member epochs and assignments of a KIP-848 consumer group (``shoal group describe
--members``), asked of the group coordinator with ConsumerGroupDescribe.

confluent-kafka's admin API describes members without their epochs, so the CLI sends this one
request itself, over a plain TCP connection to the coordinator the admin client found. The
CLI's SASL and TLS settings are librdkafka's; on such a listener (``security.protocol`` other
than PLAINTEXT) the members are shown without epochs instead.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any, Final

from shoal.protocol import RequestHeader, decode_response, encode_request
from shoal.protocol._kio import request_class
from shoal.protocol.build import build

CONSUMER_GROUP_DESCRIBE: Final = 69
VERSION: Final = 0
RESPONSE_BYTES_MAX: Final = 64 * 1024 * 1024
"""A bound on the answer read (a group of thousands of members is a few MB)."""
_SIZE: Final = struct.Struct(">i")


@dataclass(frozen=True)
class MemberEpochs:
    member_id: str
    client_id: str
    host: str
    member_epoch: int
    assignment: dict[str, list[int]]
    target: dict[str, list[int]]


@dataclass(frozen=True)
class GroupEpochs:
    state: str
    group_epoch: int
    assignment_epoch: int
    assignor: str
    members: list[MemberEpochs]


def _parts(assignment: Any) -> dict[str, list[int]]:
    return {
        tp.topic_name: sorted(int(p) for p in tp.partitions) for tp in assignment.topic_partitions
    }


def _receive(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 16))
        if not chunk:
            raise ConnectionError("the coordinator closed the connection")
        data += chunk
    return bytes(data)


def receive_frame_size(sock: socket.socket) -> int:
    (size,) = _SIZE.unpack(_receive(sock, 4))
    return int(size)


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    return _receive(sock, size)


def describe_epochs(host: str, port: int, group: str, timeout_s: float) -> GroupEpochs | None:
    """The group as its coordinator describes it; None if it is not a consumer group.
    Raises OSError (or ConnectionError) when the coordinator cannot be asked."""
    body = build(
        request_class(CONSUMER_GROUP_DESCRIBE, VERSION),
        {"group_ids": [group], "include_authorized_operations": False},
    )
    frame = encode_request(RequestHeader(CONSUMER_GROUP_DESCRIBE, VERSION, 1, "shoal-cli"), body)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(frame)
        (size,) = _SIZE.unpack(_receive(sock, 4))
        if not 0 <= size <= RESPONSE_BYTES_MAX:
            raise ConnectionError(f"the coordinator sent a frame of {size} bytes")
        _, response = decode_response(_receive(sock, size), CONSUMER_GROUP_DESCRIBE, VERSION)
    described: Any = getattr(response, "groups", [None])[0]
    if described is None:  # pragma: no cover - every ConsumerGroupDescribe answer has groups
        raise ConnectionError("the coordinator's answer names no group")
    if int(described.error_code) != 0:
        return None
    return GroupEpochs(
        state=described.group_state,
        group_epoch=int(described.group_epoch),
        assignment_epoch=int(described.assignment_epoch),
        assignor=described.assignor_name,
        members=[
            MemberEpochs(
                member_id=m.member_id,
                client_id=m.client_id,
                host=m.client_host,
                member_epoch=int(m.member_epoch),
                assignment=_parts(m.assignment),
                target=_parts(m.target_assignment),
            )
            for m in described.members
        ],
    )


def assignment_text(assignment: dict[str, list[int]]) -> str:
    """Kafka's tool's form: ``topic:0,1;other:2``, ``-`` for nothing."""
    if not assignment:
        return "-"
    return ";".join(f"{t}:{','.join(map(str, ps))}" for t, ps in sorted(assignment.items()))
