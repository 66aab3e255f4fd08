"""The Prometheus text exposition format (0.0.4), written directly.

A family is its ``# HELP`` and ``# TYPE`` lines, then its samples; a histogram's samples are its
cumulative ``_bucket`` lines (``le`` ascending, ``+Inf`` last), ``_sum`` and ``_count``. Label
values are escaped as the format says (backslash, double quote, newline).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from shoal.metrics.core import Histogram

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

Labels = Sequence[tuple[str, str]]


def escape(value: str) -> str:
    if "\\" not in value and '"' not in value and "\n" not in value:
        return value  # nearly always: topic names cannot hold these, group ids rarely do
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def label_text(labels: Labels) -> str:
    """``{a="x",b="y"}``, or nothing when there are no labels."""
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{escape(value)}"' for key, value in labels) + "}"


def number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class Exposition:
    """Lines of one scrape, appended family by family; :meth:`text` joins them."""

    __slots__ = ("_lines", "names")

    def __init__(self) -> None:
        self._lines: list[str] = []
        self.names: list[str] = []
        """Every family written, in order (tests and docs check them against the list)."""

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.names.append(name)
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: str, value: float) -> None:
        """One line; ``labels`` already rendered by :func:`label_text`."""
        self._lines.append(f"{name}{labels} {number(value)}")

    def extend(self, lines: list[str]) -> None:
        """Sample lines written by the caller (``name{labels} value``)."""
        self._lines.extend(lines)

    def histogram(self, name: str, labels: Labels, histogram: Histogram) -> None:
        """The ``_bucket``, ``_sum`` and ``_count`` lines of one labelled histogram."""
        head = ",".join(f'{key}="{escape(value)}"' for key, value in labels)
        prefix = f"{name}_bucket{{{head}," if head else f"{name}_bucket{{"
        counts = list(histogram.counts)  # one copy: another thread may be observing
        cumulative = 0
        lines = self._lines
        for bound, count in zip(histogram.bounds, counts, strict=False):
            cumulative += count
            lines.append(f'{prefix}le="{number(float(bound))}"}} {cumulative}')
        cumulative += counts[-1]
        lines.append(f'{prefix}le="+Inf"}} {cumulative}')
        rendered = f"{{{head}}}" if head else ""
        lines.append(f"{name}_sum{rendered} {number(histogram.sum)}")
        lines.append(f"{name}_count{rendered} {cumulative}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"
