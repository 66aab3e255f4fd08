"""The metrics core: histogram buckets are Prometheus' "le", the exposition is cumulative and
escaped, error codes are found at any depth of a response, and a Fetch's records are counted
from its batch headers."""

from __future__ import annotations

import datetime
import uuid

from kio.schema.create_topics.v7.response import CreatableTopicResult, CreateTopicsResponse

from shoal.broker.stats import BrokerStats
from shoal.metrics import Exposition, Histogram
from shoal.metrics.exposition import label_text
from shoal.protocol import ErrorCode
from shoal.protocol.fetch_response import FetchedPartition, FetchedTopic, FetchResponse
from shoal.records import SimpleRecord, build_batch
from shoal.server.request_metrics import RequestMetrics, error_codes
from tests.metrics.scrape import parse


def test_a_value_on_a_bound_falls_in_that_bucket() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.1, 0.5, 1.0, 7.0):
        histogram.observe(value)
    assert histogram.counts == [1, 2, 1]
    assert histogram.count == 4
    out = Exposition()
    out.family("x_seconds", "histogram", "help")
    out.histogram("x_seconds", (("api", 'a"b\\c\nd'),), histogram)
    text = out.text()
    assert 'x_seconds_bucket{api="a\\"b\\\\c\\nd",le="0.1"} 1' in text
    assert 'x_seconds_bucket{api="a\\"b\\\\c\\nd",le="1.0"} 3' in text
    assert 'x_seconds_bucket{api="a\\"b\\\\c\\nd",le="+Inf"} 4' in text
    samples = parse(text).samples
    labels = frozenset({("api", 'a"b\\c\nd')})
    assert samples[("x_seconds_count", labels)] == 4
    assert samples[("x_seconds_sum", labels)] == 8.6
    assert label_text(()) == ""


def test_error_codes_are_found_at_any_depth_and_counted_per_api() -> None:
    response = CreateTopicsResponse(
        throttle_time=datetime.timedelta(0),
        topics=(
            _created("a", ErrorCode.TOPIC_ALREADY_EXISTS),
            _created("b", ErrorCode.NONE),
            _created("c", ErrorCode.INVALID_PARTITIONS),
        ),
    )
    assert sorted(error_codes(response)) == [
        ErrorCode.TOPIC_ALREADY_EXISTS,
        ErrorCode.INVALID_PARTITIONS,
    ]
    metrics = RequestMetrics()
    metrics.observe(19, 7, 0.001, response)
    metrics.observe(19, 7, 0.002, response)
    assert metrics.errors == {
        19: {ErrorCode.TOPIC_ALREADY_EXISTS: 2, ErrorCode.INVALID_PARTITIONS: 2}
    }
    assert metrics.durations[19][7].count == 2


def test_a_fetch_counts_bytes_and_records_out_per_topic() -> None:
    batches = build_batch([SimpleRecord(value=b"x")] * 3) + build_batch([SimpleRecord(value=b"y")])
    partition = FetchedPartition(0, 0, 4, 4, 0, batches)
    empty = FetchedPartition(1, ErrorCode.OFFSET_OUT_OF_RANGE, 4, 4, 0, b"")
    topics = [FetchedTopic("t", uuid.UUID(int=0), [partition, empty])]
    stats = BrokerStats()
    stats.fetched(topics)
    assert stats.topics["t"].records_out == 4
    assert stats.topics["t"].bytes_out == len(batches)
    assert list(error_codes(FetchResponse(topics=topics))) == [ErrorCode.OFFSET_OUT_OF_RANGE]


def _created(name: str, code: ErrorCode) -> CreatableTopicResult:
    return CreatableTopicResult(
        name=name,
        topic_id=None,
        error_code=code,  # type: ignore[arg-type]
        error_message=None,
        topic_config_error_code=ErrorCode.NONE,  # type: ignore[arg-type]
        num_partitions=1,
        replication_factor=1,
        configs=(),
    )
