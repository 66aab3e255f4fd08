"""Leader-epoch checks shared by the handlers that take a client's ``current_leader_epoch``
(Fetch, OffsetForLeaderEpoch, ListOffsets), as Kafka's Partition checks them.

Every partition's epoch is its log's: 0 when created, one more at every broker start (see
:mod:`shoal.storage.epochs`).
"""

from __future__ import annotations

from typing import Final

from shoal.protocol import ErrorCode
from shoal.storage import PartitionLog

NO_EPOCH: Final = -1
"""A client that sends -1 as its current epoch asks for no check."""


def fence(plog: PartitionLog, current_leader_epoch: int) -> ErrorCode | None:
    """The error for a client whose ``current_leader_epoch`` is not the partition's: an older
    one is FENCED_LEADER_EPOCH (its metadata is stale), a newer one UNKNOWN_LEADER_EPOCH (this
    broker has not caught up with it); None when they agree or the client asks for no check."""
    if current_leader_epoch == NO_EPOCH:
        return None
    epoch = plog.leader_epoch
    if current_leader_epoch < epoch:
        return ErrorCode.FENCED_LEADER_EPOCH
    if current_leader_epoch > epoch:
        return ErrorCode.UNKNOWN_LEADER_EPOCH
    return None


def epoch_of(plog: PartitionLog | None) -> int:
    """The partition's leader epoch for answers that report it; -1 when it is not served."""
    return plog.leader_epoch if plog is not None else NO_EPOCH
