"""KIP-932 share sessions (shoal.broker.share_groups): epoch 0 opens (replacing an old
session), each later request carries the epoch the last one was given, -1 closes."""

from __future__ import annotations

import pytest

from shoal.broker.share_groups import MAX_EPOCH, ShareGroups, ShareSessionError, next_epoch
from shoal.protocol import ErrorCode
from shoal.testing.clock import FakeClock


def test_session_epochs() -> None:
    shares = ShareGroups(FakeClock())
    with pytest.raises(ShareSessionError) as missing:
        shares.session("g", "m", 1, set(), set())
    assert missing.value.code is ErrorCode.SHARE_SESSION_NOT_FOUND
    opened = shares.session("g", "m", 0, {("t", 0), ("t", 1)}, set())
    assert opened is not None and opened.epoch == 1
    with pytest.raises(ShareSessionError) as stale:
        shares.session("g", "m", 2, set(), set())
    assert stale.value.code is ErrorCode.INVALID_SHARE_SESSION_EPOCH
    later = shares.session("g", "m", 1, {("u", 0)}, {("t", 1)})
    assert later is not None and later.epoch == 2
    assert later.partitions == {("t", 0), ("u", 0)}
    reopened = shares.session("g", "m", 0, {("v", 0)}, set())
    assert reopened is not None and reopened.partitions == {("v", 0)} and reopened.epoch == 1
    assert shares.session("g", "m", -1, set(), set()) is None
    with pytest.raises(ShareSessionError):
        shares.session("g", "m", 1, set(), set())
    assert next_epoch(MAX_EPOCH) == 1
