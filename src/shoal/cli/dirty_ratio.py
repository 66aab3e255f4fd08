"""The dirty ratio of a compacted topic's partitions, for ``shoal topic describe``.

Kafka has no protocol API for the cleaner's state (DescribeLogDirs carries sizes and offset
lags, DescribeConfigs carries configs): a Kafka operator reads it from the broker's metrics
(JMX). shoal publishes it the same way, as ``shoal_log_cleaner_dirty_ratio`` on the broker's
HTTP face (``/metrics``), so that is where the CLI reads it. A broker without that face (a Kafka
cluster, or one whose HTTP listener is elsewhere) just has no dirty ratio to show.
"""

from __future__ import annotations

import os
from typing import Final

DEFAULT_HTTP_URL: Final = "http://127.0.0.1:8080"
"""shoal broker's default ``http_listen``."""
HTTP_URL_ENV: Final = "SHOAL_HTTP_URL"
DIRTY_RATIO_METRIC: Final = "shoal_log_cleaner_dirty_ratio"


class DirtyRatioUnavailable(Exception):
    """The broker's metrics could not be read; the message says why."""


def default_http_url() -> str:
    return os.environ.get(HTTP_URL_ENV, DEFAULT_HTTP_URL)


def is_compacted(configs: dict[str, str] | None) -> bool:
    return configs is not None and "compact" in configs.get("cleanup.policy", "").split(",")


def dirty_ratios(http_url: str, topic: str, timeout_s: float) -> dict[int, float]:
    """Partition -> dirty ratio of ``topic``, from the broker's ``/metrics``."""
    # Imported here: only `shoal topic describe` of a compacted topic reads the metrics, and
    # httpx costs every other topic command tens of ms of start-up.
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    url = http_url.rstrip("/") + "/metrics"
    try:
        response = httpx.get(url, timeout=timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DirtyRatioUnavailable(f"could not read {url}: {exc}") from None
    ratios: dict[int, float] = {}
    for family in text_string_to_metric_families(response.text):
        if family.name != DIRTY_RATIO_METRIC:
            continue
        for sample in family.samples:
            if sample.labels.get("topic") == topic:
                ratios[int(sample.labels["partition"])] = sample.value
    return ratios
