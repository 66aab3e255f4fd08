"""What shoal exports, as docs/metrics.md lists it (the scrape test checks the broker's part of
that list against a live /metrics), and the series names a PromQL expression uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
DOC: Final = ROOT / "docs" / "metrics.md"
FRAMEWORK_HEADING: Final = "## Framework families"

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_OURS = re.compile(r"^(shoal|kafka|process)_")


def _rows(text: str) -> dict[str, str]:
    """Name -> type from markdown table rows ``| name | type | labels | meaning |``."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        if len(cells) >= 4 and _OURS.match(name) and " " not in name:
            rows[name] = cells[1]
    return rows


def broker_families() -> dict[str, str]:
    """The broker's families (name -> type), from the part of the doc before the framework's."""
    return _rows(DOC.read_text().split(FRAMEWORK_HEADING)[0])


def framework_series() -> dict[str, str]:
    return _rows(DOC.read_text().split(FRAMEWORK_HEADING)[1])


def known_series() -> set[str]:
    """Every series name shoal exports: histograms with their _bucket, _sum and _count."""
    names: set[str] = set()
    for name, kind in {**broker_families(), **framework_series()}.items():
        names.add(name)
        if kind == "histogram":
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return names


def series_in(expression: str) -> set[str]:
    """The shoal, kafka_exporter and process series an expression names (label values and
    strings are dropped first, so a topic named like a metric does not count)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    return {name for name in _NAME.findall(without_strings) if _OURS.match(name)}
