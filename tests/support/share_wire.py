"""Share-group requests over the wire (KIP-932), as the tests send them with
:class:`tests.server.wire.WireClient`: the request bodies of ShareGroupHeartbeat, ShareFetch and
ShareAcknowledge v1, built in one place, and what an answer acquired.

Acknowledgements are ``(first offset, last offset, type)`` triples on one partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

SHARE_GROUP_HEARTBEAT: Final = 76
SHARE_FETCH: Final = 78
SHARE_ACKNOWLEDGE: Final = 79
GAP, ACCEPT, RELEASE, REJECT = 0, 1, 2, 3
"""The acknowledge types (ShareFetch/ShareAcknowledge ``acknowledge_types``)."""
LEAVE_EPOCH: Final = -1
"""A ShareGroupHeartbeat's member epoch that leaves the group."""
CLOSE_SESSION_EPOCH: Final = -1
"""A ShareFetch's or ShareAcknowledge's session epoch that closes the share session."""

Ack = tuple[int, int, int]


def heartbeat_body(
    group: str, member: str, member_epoch: int, topics: Sequence[str] | None
) -> dict[str, Any]:
    """A ShareGroupHeartbeat v1: ``topics`` None keeps the subscription as it is."""
    return {
        "group_id": group,
        "member_id": member,
        "member_epoch": member_epoch,
        "rack_id": None,
        "subscribed_topic_names": None if topics is None else list(topics),
    }


def _partition_acks(topic_id: Any, acks: Iterable[Ack], partition: int) -> list[dict[str, Any]]:
    return [
        {
            "topic_id": topic_id,
            "partitions": [
                {
                    "partition_index": partition,
                    "acknowledgement_batches": [
                        {"first_offset": first, "last_offset": last, "acknowledge_types": [kind]}
                        for first, last, kind in acks
                    ],
                }
            ],
        }
    ]


def share_fetch_body(
    group: str,
    member: str,
    session_epoch: int,
    topic_id: Any | None,
    *,
    acks: Iterable[Ack] = (),
    max_wait_ms: int,
    min_bytes: int = 1,
    max_bytes: int = 1 << 20,
    max_records: int,
    batch_size: int | None = None,
    partition: int = 0,
) -> dict[str, Any]:
    """A ShareFetch v1 of one partition of ``topic_id`` carrying ``acks``; ``topic_id`` None
    names no topic (a session close, or a fetch of what the session already holds)."""
    return {
        "group_id": group,
        "member_id": member,
        "share_session_epoch": session_epoch,
        "max_wait": max_wait_ms,
        "min_bytes": min_bytes,
        "max_bytes": max_bytes,
        "max_records": max_records,
        "batch_size": max_records if batch_size is None else batch_size,
        "topics": [] if topic_id is None else _partition_acks(topic_id, acks, partition),
        "forgotten_topics_data": [],
    }


def share_acknowledge_body(
    group: str,
    member: str,
    session_epoch: int,
    topic_id: Any | None,
    acks: Iterable[Ack] = (),
    partition: int = 0,
) -> dict[str, Any]:
    """A ShareAcknowledge v1 of one partition of ``topic_id``; ``topic_id`` None names no topic
    (with :data:`CLOSE_SESSION_EPOCH`, a session close)."""
    return {
        "group_id": group,
        "member_id": member,
        "share_session_epoch": session_epoch,
        "topics": [] if topic_id is None else _partition_acks(topic_id, acks, partition),
    }


def acquired_ranges(partition: Any) -> list[tuple[int, int]]:
    """(first, last) of each range a ShareFetch answer's partition acquired."""
    return [(int(r.first_offset), int(r.last_offset)) for r in partition.acquired_records]
