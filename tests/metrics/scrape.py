"""Scraping and parsing a broker's /metrics for the metrics tests (strict: prometheus-client's
parser refuses malformed text)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shoal.embedded import EmbeddedBroker

HTTP_TIMEOUT_S = 30.0

Key = tuple[str, frozenset[tuple[str, str]]]


@dataclass
class Scrape:
    text: str
    kinds: dict[str, str] = field(default_factory=dict)
    """Family name -> type (counter, gauge, histogram)."""
    samples: dict[Key, float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def get(self, name: str, default: float = 0.0, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), default)

    def total(self, name: str, **labels: str) -> float:
        """The sum over every series of ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {ls: v for (n, ls), v in self.samples.items() if n == name}


def parse(text: str) -> Scrape:
    scrape = Scrape(text)
    for family in text_string_to_metric_families(text):
        # prometheus-client reports a counter family without its _total suffix.
        name = family.name + "_total" if family.type == "counter" else family.name
        scrape.kinds[name] = family.type
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in scrape.samples, f"duplicate series {key}"
            scrape.samples[key] = sample.value
    return scrape


def scrape(broker: EmbeddedBroker) -> Scrape:
    response = httpx.get(f"{broker.http_url}/metrics", timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)
