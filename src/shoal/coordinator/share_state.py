"""The durable form of a share-partition's state (what Kafka keeps in ``__share_group_state``):
start offset and in-flight batches with state and delivery count, as JSON, named after its
group so that two groups never read each other's state.

shoal keeps one such state per share group in the partition's directory, each version
appended to a side journal and fsynced before an acknowledgement is answered (see
shoal.broker.share_state_writer), so a restart redelivers no acknowledged record.
Acquisitions are not written: after a crash a record acquired since the last write is
Available again (delivered again, its count as last written), as Kafka's state
after a leader change; none is lost.
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

from shoal.coordinator.share_partition import RecordState, ShareState, StateBatch

FORMAT_VERSION: Final = 1
FILE_PREFIX: Final = "share-"


class ShareStateError(ValueError):
    """A state file that is not one shoal wrote for this group."""


def state_file_name(group_id: str) -> str:
    """A side-file name for the group (side files are lower-case words and dashes)."""
    return FILE_PREFIX + hashlib.sha256(group_id.encode()).hexdigest()[:40]


def encode_state(group_id: str, state: ShareState) -> bytes:
    return json.dumps(
        {
            "version": FORMAT_VERSION,
            "group": group_id,
            "start_offset": state.start_offset,
            "batches": [
                [b.first_offset, b.last_offset, int(b.state), b.delivery_count]
                for b in state.batches
            ],
        },
        separators=(",", ":"),
    ).encode()


def encode_deleted(group_id: str) -> bytes:
    """What replaces the state when the group is deleted: a later group of that name starts
    afresh (where share.auto.offset.reset says)."""
    return json.dumps({"version": FORMAT_VERSION, "group": group_id, "deleted": True}).encode()


def decode_state(group_id: str, payload: bytes) -> ShareState | None:
    """The state written for the group; None once the group was deleted."""
    try:
        doc = json.loads(payload)
        if doc["version"] != FORMAT_VERSION:
            raise ShareStateError(f"unknown share state version {doc['version']!r}")
        if doc["group"] != group_id:
            raise ShareStateError(f"share state of group {doc['group']!r}, not {group_id!r}")
        if doc.get("deleted"):
            return None
        batches = tuple(
            StateBatch(int(first), int(last), RecordState(int(state)), int(count))
            for first, last, state, count in doc["batches"]
        )
        return ShareState(int(doc["start_offset"]), batches)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ShareStateError):
            raise
        raise ShareStateError(f"damaged share state: {exc}") from exc
