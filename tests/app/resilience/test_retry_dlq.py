"""Transport-independent parts of retry and DLQ: backoff bounds, offset tracking, headers, serde."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from shoal.app.message import Message
from shoal.app.offsets import OffsetTracker
from shoal.app.resilience import dlq
from shoal.app.resilience.dlq import Failure, dlq_headers
from shoal.app.resilience.retry import Retry
from shoal.app.serdes.payload import SerdeError, decode, decoder_for, encode
from shoal.invariant import InvariantError


def test_backoff_ceiling_doubles_from_base_up_to_max() -> None:
    retry = Retry(max_attempts=10, base_delay_ms=50, max_delay_ms=300)
    assert [retry.ceiling_ms(n) for n in range(1, 7)] == [50, 100, 200, 300, 300, 300]
    assert retry.ceiling_ms(5000) == 300  # no huge integers for absurd attempt numbers


def test_full_jitter_spreads_over_zero_to_ceiling() -> None:
    retry = Retry(max_attempts=10, base_delay_ms=100, max_delay_ms=1000)
    rng = random.Random(1)
    delays = [retry.delay_ms(3, rng) for _ in range(2000)]
    assert all(0 <= d <= 400 for d in delays)
    assert min(delays) < 40 and max(delays) > 360  # the whole range, not a fixed delay


def test_max_attempts_counts_the_first_delivery_and_retry_on_filters() -> None:
    retry = Retry(max_attempts=3, retry_on=(TimeoutError,))
    assert retry.should_retry(TimeoutError(), 1)
    assert retry.should_retry(TimeoutError(), 2)
    assert not retry.should_retry(TimeoutError(), 3)
    assert not retry.should_retry(ValueError(), 1)
    assert not Retry(max_attempts=1).should_retry(Exception(), 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay_ms": -1}, {"base_delay_ms": 10, "max_delay_ms": 5}],
)
def test_bad_retry_settings_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Retry(**kwargs)


def test_only_contiguous_completed_offsets_are_committable() -> None:
    tracker = OffsetTracker()
    tp = ("t", 0)
    for offset in range(10, 15):
        tracker.track(tp, offset)
    tracker.complete(tp, 12)
    tracker.complete(tp, 11)
    assert tracker.committable() == {}  # 10 is unfinished: nothing after it may be committed
    tracker.complete(tp, 10)
    assert tracker.committable() == {tp: 13}
    assert tracker.committable() == {}
    tracker.complete(tp, 14)
    tracker.complete(tp, 13)
    assert tracker.committable() == {tp: 15}


def test_a_fetch_tracks_each_partition_from_its_first_record() -> None:
    tracker = OffsetTracker()
    records = [Message("t", p, o, None, b"{}") for p, o in ((0, 5), (1, 40), (0, 6), (1, 41))]
    tracker.track_all(records)
    tracker.complete(("t", 1), 41)
    assert tracker.committable() == {}  # 40 is unfinished
    tracker.complete(("t", 0), 5)
    tracker.complete(("t", 1), 40)
    assert tracker.committable() == {("t", 0): 6, ("t", 1): 42}
    tracker.track_all([Message("t", 0, 7, None, b"{}")])  # a later fetch: 6 still unfinished
    tracker.complete(("t", 0), 7)
    assert tracker.committable() == {}
    tracker.complete(("t", 0), 6)
    assert tracker.committable() == {("t", 0): 8}
    with pytest.raises(InvariantError):
        tracker.complete(("t", 9), 0)


def test_dlq_headers_replace_those_of_an_earlier_dead_lettering() -> None:
    msg = Message("t", 2, 40, b"k", b"{}", [("x", b"1"), (dlq.ATTEMPTS, b"9")], 123)
    try:
        raise RuntimeError("nope")
    except RuntimeError as exc:
        headers = dlq_headers(msg, Failure(exc, 2, 1000, 1500))
    names = [k for k, _ in headers]
    assert names.count(dlq.ATTEMPTS) == 1
    as_dict = dict(headers)
    assert as_dict["x"] == b"1"
    assert as_dict[dlq.ATTEMPTS] == b"2"
    assert as_dict[dlq.ORIGINAL_PARTITION] == b"2"
    assert as_dict[dlq.ORIGINAL_OFFSET] == b"40"
    assert as_dict[dlq.ORIGINAL_TIMESTAMP_MS] == b"123"
    assert as_dict[dlq.FIRST_FAILURE_MS] == b"1000"
    assert as_dict[dlq.LAST_FAILURE_MS] == b"1500"
    assert as_dict[dlq.EXCEPTION_TYPE] == b"builtins.RuntimeError"


@dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    ("annotation", "value"),
    [(Point, Point(1, 2)), (dict, {"a": None}), (str, "ü"), (bytes, b"\x00"), (int, 7)],
)
def test_encode_then_decode_round_trips(annotation: type, value: object) -> None:
    assert decode(decoder_for(annotation), encode(value)) == value


@pytest.mark.parametrize(
    ("annotation", "raw"),
    [(Point, b"[1, 2]"), (Point, b'{"x": 1}'), (dict, b"{"), (int, b"true"), (str, b"\xff")],
)
def test_undecodable_payloads_raise_serde_error(annotation: type, raw: bytes) -> None:
    with pytest.raises(SerdeError):
        decode(decoder_for(annotation), raw)


def test_a_handler_type_shoal_cannot_decode_is_refused_at_registration() -> None:
    with pytest.raises(TypeError, match="cannot decode"):
        decoder_for(complex)


def test_commits_pass_over_offsets_a_consumer_never_sees() -> None:
    """Transaction markers and compaction leave gaps in a partition's offsets: the records
    either side of one are contiguous for committing (the commit used to stop at the gap)."""
    tracker = OffsetTracker()
    tp = ("t", 0)
    records = [Message("t", 0, o, None, b"{}") for o in (0, 1, 2, 4, 5, 9)]  # 3, 6-8: markers
    tracker.track_all(records)
    for offset in (5, 0, 1, 4, 2):
        tracker.complete(tp, offset)
    assert tracker.committable() == {tp: 9}  # 9 is unfinished
    tracker.complete(tp, 9)
    assert tracker.committable() == {tp: 10}


def test_a_partition_read_again_from_an_earlier_offset_starts_its_run_again() -> None:
    """The partition went to another member and came back (or the consumer was sent back):
    what was pending of the earlier reading no longer holds the commit back."""
    tracker = OffsetTracker()
    tp = ("t", 0)
    tracker.track_all([Message("t", 0, o, None, b"{}") for o in range(10, 15)])
    tracker.complete(tp, 10)
    assert tracker.committable() == {tp: 11}
    tracker.track_all([Message("t", 0, o, None, b"{}") for o in range(12, 14)])
    tracker.complete(tp, 12)
    tracker.complete(tp, 13)
    assert tracker.committable() == {tp: 14}
    tracker.complete(tp, 11)  # of the earlier reading: changes nothing
    assert tracker.committable() == {}
