"""What the share-group offsets admin APIs share (issue 16)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoal.broker.broker import Broker


def busy(broker: Broker, group_id: str) -> bool:
    group = broker.share_groups.groups.get(group_id)
    return group is not None and bool(group.members)
