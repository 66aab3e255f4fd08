"""The producer-state snapshot: what goes in comes out, and damage reads as "no snapshot"."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from shoal.coordinator.partition_txns import AbortedTxn, PartitionTxns
from shoal.coordinator.producer_snapshot import decode_snapshot, encode_snapshot
from shoal.coordinator.producer_state import (
    BATCHES_RETAINED,
    EPOCH_MAX,
    SEQUENCE_MAX,
    BatchMetadata,
    PartitionProducers,
)


def dump(state: PartitionProducers) -> list[tuple[int, int, int, list[BatchMetadata]]]:
    return [(pid, e.epoch, e.last_seen_ms, list(e.batches)) for pid, e in state.items()]


@st.composite
def states(draw: st.DrawFn) -> tuple[PartitionProducers, int]:
    state = PartitionProducers()
    offset = 0
    for pid in draw(st.lists(st.integers(0, 2**63 - 1), unique=True, max_size=8)):
        epoch = draw(st.integers(0, EPOCH_MAX))
        for _ in range(draw(st.integers(1, BATCHES_RETAINED + 2))):
            count = draw(st.integers(1, 50))
            first = draw(st.integers(0, SEQUENCE_MAX))
            batch = BatchMetadata(
                first,
                (first + count - 1) % (SEQUENCE_MAX + 1),
                offset,
                offset + count - 1,
                draw(st.integers(-1, 2**62)),
            )
            offset += count
            state.record(pid, epoch, batch, draw(st.integers(0, 2**62)))
    return state, offset + draw(st.integers(0, 10))


@given(states())
def test_round_trip(state_and_offset: tuple[PartitionProducers, int]) -> None:
    state, offset = state_and_offset
    snapshot = decode_snapshot(encode_snapshot(state, offset))
    assert snapshot is not None and snapshot.log_offset == offset
    restored = PartitionProducers()
    snapshot.restore_into(restored)
    assert dump(restored) == dump(state)  # same entries, same least-recent-first order


def sample() -> bytes:
    state = PartitionProducers()
    state.record(5, 1, BatchMetadata(0, 9, 0, 9, 123), 1000)
    state.record(6, 0, BatchMetadata(0, 0, 10, 10, 124), 1001)
    return encode_snapshot(state, 11)


def test_every_truncation_is_refused() -> None:
    data = sample()
    assert decode_snapshot(data) is not None
    for size in range(len(data)):
        assert decode_snapshot(data[:size]) is None, size
    assert decode_snapshot(data + b"\0") is None


def test_insane_values_are_refused() -> None:
    data = bytearray(sample())
    head = 4 + 1 + 8 + 4
    cases = {
        "magic": (0, b"XXXX"),
        "version": (4, b"\x04"),
        "huge producer count": (13, struct.pack(">I", 2**32 - 1)),
        "negative producer id": (head, struct.pack(">q", -1)),
        "negative epoch": (head + 8, struct.pack(">h", -1)),
        "six batches": (head + 18, b"\x06"),
        "offset past the snapshot's": (head + 19 + 8, struct.pack(">qq", 0, 11)),
        "negative sequence": (head + 19, struct.pack(">i", -5)),
        "coordinator epoch below -1": (head + 19 + 32, struct.pack(">i", -2)),
    }
    for name, (position, patch) in cases.items():
        damaged = bytearray(data)
        damaged[position : position + len(patch)] = patch
        assert decode_snapshot(bytes(damaged)) is None, name


def test_the_coordinator_epoch_and_timestamp_of_the_last_marker_round_trip() -> None:
    state = PartitionProducers()
    state.record(5, 1, BatchMetadata(0, 9, 0, 9, 123), 1000)
    state.record_marker(5, 1, 1001, coordinator_epoch=4, timestamp_ms=777)
    decoded = decode_snapshot(encode_snapshot(state, 11))
    assert decoded is not None
    decoded.restore_into(restored := PartitionProducers())
    entry = restored.get(5)
    assert entry is not None and (entry.coordinator_epoch, entry.last_timestamp_ms) == (4, 777)
    assert entry.last_sequence == 9  # the same epoch: the batches stay


def test_duplicate_producer_ids_are_refused() -> None:
    state = PartitionProducers()
    state.record(5, 1, BatchMetadata(0, 9, 0, 9, 0), 0)
    one = encode_snapshot(state, 10)
    head = 4 + 1 + 8 + 4
    twice = one[:13] + struct.pack(">I", 2) + one[head:] + one[head:]
    assert decode_snapshot(twice) is None


def test_transactions_round_trip_and_version_1_still_reads() -> None:
    state = PartitionProducers()
    state.record(5, 1, BatchMetadata(0, 9, 0, 9, 123), 1000)
    state.record_marker(7, 3, 1001)  # an epoch a marker started: no batch yet
    txns = PartitionTxns()
    txns.on_transactional_batch(5, 0)
    txns.on_transactional_batch(8, 4)
    txns.on_marker(8, False, 10)
    decoded = decode_snapshot(encode_snapshot(state, 11, txns))
    assert decoded is not None
    restored, restored_txns = PartitionProducers(), PartitionTxns()
    decoded.restore_into(restored, restored_txns)
    marker_only = restored.get(7)
    assert marker_only is not None and marker_only.epoch == 3 and not marker_only.batches
    assert restored_txns.ongoing == {5: 0}
    assert restored_txns.aborted == [AbortedTxn(8, 4, 10)]
    # A version 1 snapshot has no transaction sections, and (as version 2) no marker fields.
    one = b"".join(
        [
            struct.pack(">4sBqI", b"SHPS", 1, 11, 2),
            struct.pack(">qhqB", 5, 1, 1000, 1),
            struct.pack(">iiqqq", 0, 9, 0, 9, 123),
            struct.pack(">qhqB", 7, 3, 1001, 0),
        ]
    )
    old = decode_snapshot(one)
    assert old is not None and old.ongoing == () and old.aborted == ()
    old.restore_into(restored := PartitionProducers())
    entry = restored.get(5)
    assert entry is not None and (entry.coordinator_epoch, entry.last_timestamp_ms) == (-1, 123)
    # An aborted range past the snapshot's offset is damage.
    txns.on_transactional_batch(9, 11)
    txns.on_marker(9, False, 12)
    assert decode_snapshot(encode_snapshot(state, 11, txns)) is None
