"""Per-request figures: count and duration per API key and version, errors per API and error
code, throttling; and per-listener connection figures.

Kept as plain numbers on the event loop (see :mod:`shoal.metrics.core`): one request costs two
dict lookups (key, then version), a histogram observation, and a walk of its response's error
codes (direct loops for Produce and Fetch, the hot ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Final

from shoal.metrics.core import Histogram, bucket_bounds
from shoal.protocol.fetch_response import FetchResponse
from shoal.protocol.produce_response import ProduceResponse

REQUEST_DURATION_BUCKETS_S: Final = bucket_bounds(0.0001, 2.5, 12)
"""100 µs (an ApiVersions on a warm loop) to about 6 s (a JoinGroup waiting out a rebalance);
Kafka's RequestMetrics TotalTimeMs covers the same span."""


class ListenerStats:
    """What one listener's connections did (the live ones are counted by the server)."""

    __slots__ = ("authentication_failures", "authentication_successes", "connections_accepted")

    def __init__(self) -> None:
        self.connections_accepted = 0
        self.authentication_successes = 0
        self.authentication_failures = 0
        """SASL exchanges that failed, and TLS clients refused for their certificate."""


class RequestMetrics:
    """Shared by every listener of a broker."""

    def __init__(self) -> None:
        self.durations: dict[int, dict[int, Histogram]] = {}
        """By API key, then version: the request's time from dispatch to its response built."""
        self.errors: dict[int, dict[int, int]] = {}
        """By API key, then Kafka error code (non-zero codes in its responses)."""
        self.throttle_ms: dict[int, int] = {}
        """Throttle time given to clients by quotas, by API key."""
        self.throttled: dict[int, int] = {}
        """Responses that carried a throttle, by API key."""

    def observe(self, api_key: int, version: int, duration_s: float, response: object) -> None:
        by_version = self.durations.get(api_key)
        if by_version is None:
            by_version = self.durations[api_key] = {}
        histogram = by_version.get(version)
        if histogram is None:
            histogram = by_version[version] = Histogram(REQUEST_DURATION_BUCKETS_S)
        histogram.observe(duration_s)
        if isinstance(response, (ProduceResponse, FetchResponse)):
            # The hot ones: a direct walk, and nothing allocated when every code is 0.
            for topic in response.topics:
                for partition in topic.partitions:
                    if partition.error_code:
                        self._error(api_key, partition.error_code)
            if isinstance(response, FetchResponse) and response.error_code:
                self._error(api_key, response.error_code)
        elif response is not None:
            for code in _walk(response):
                self._error(api_key, code)

    def _error(self, api_key: int, code: int) -> None:
        counts = self.errors.get(api_key)
        if counts is None:
            counts = self.errors[api_key] = {}
        counts[code] = counts.get(code, 0) + 1

    def throttle(self, api_key: int, throttle_ms: int) -> None:
        self.throttle_ms[api_key] = self.throttle_ms.get(api_key, 0) + throttle_ms
        self.throttled[api_key] = self.throttled.get(api_key, 0) + 1


def error_codes(response: object) -> Iterator[int]:
    """Every non-zero ``error_code`` in a response, at any depth (Kafka's errorCounts)."""
    if isinstance(response, (ProduceResponse, FetchResponse)):
        for topic in response.topics:
            for partition in topic.partitions:
                if partition.error_code:
                    yield partition.error_code
        code = getattr(response, "error_code", 0)
        if code:
            yield code
        return
    yield from _walk(response)


_FIELDS: dict[type, tuple[str, ...]] = {}


def _walk(value: object) -> Iterator[int]:
    kind = type(value)
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = (
            tuple(f.name for f in dataclasses.fields(kind))
            if dataclasses.is_dataclass(kind)
            else ()
        )
    for name in names:
        item = getattr(value, name)
        if name == "error_code":
            if item:
                yield int(item)
        elif isinstance(item, (tuple, list)):
            for element in item:
                if dataclasses.is_dataclass(element):
                    yield from _walk(element)
                else:
                    break  # a list of scalars (ids, names)
        elif dataclasses.is_dataclass(item):
            yield from _walk(item)
