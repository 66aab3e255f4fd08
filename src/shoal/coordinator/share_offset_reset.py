"""``share.auto.offset.reset``: where a share group starts on a partition it has no state for.

Kafka 4.4 accepts ``latest`` (the default: only records produced from now on), ``earliest``
(the log start) and ``by_duration:<ISO-8601 duration>`` (the first record at most that long
ago, read as Java's ``Duration.parse`` reads it: ``PnDTnHnMn.nS``; no record that recent
means the log end).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

LATEST: Final = "latest"
EARLIEST: Final = "earliest"
BY_DURATION: Final = "by_duration:"

_DURATION = re.compile(
    r"(?P<sign>[-+]?)P(?:(?P<d>[-+]?\d+)D)?"
    r"(?:T(?:(?P<h>[-+]?\d+)H)?(?:(?P<m>[-+]?\d+)M)?(?:(?P<s>[-+]?\d+(?:[.,]\d{0,9})?)S)?)?",
    re.IGNORECASE,
)
_MS_PER: Final = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000}


class OffsetResetError(ValueError):
    """A ``share.auto.offset.reset`` value Kafka refuses."""


@dataclass(frozen=True, slots=True)
class OffsetReset:
    strategy: str
    """``latest``, ``earliest`` or ``by_duration``."""
    duration_ms: int = 0


def parse_offset_reset(value: str) -> OffsetReset:
    lowered = value.strip().lower()
    if lowered in (LATEST, EARLIEST):
        return OffsetReset(lowered)
    if lowered.startswith(BY_DURATION):
        text = value.strip()[len(BY_DURATION) :]
        return OffsetReset("by_duration", _duration_ms(text))
    raise OffsetResetError(
        f"Invalid value {value} for configuration share.auto.offset.reset: "
        "must be latest, earliest or by_duration:<ISO8601 duration>"
    )


def _duration_ms(text: str) -> int:
    match = _DURATION.fullmatch(text)
    if match is None or text.upper().endswith("T") or not any(match.group(k) for k in _MS_PER):
        raise OffsetResetError(f"Invalid ISO8601 duration {text!r} in by_duration")
    total = Decimal(0)
    try:
        for key, per in _MS_PER.items():
            part = match.group(key)
            if part:
                total += Decimal(part.replace(",", ".")) * per
    except InvalidOperation:
        raise OffsetResetError(f"Invalid ISO8601 duration {text!r} in by_duration") from None
    if match.group("sign") == "-":
        total = -total
    if total < 0:
        raise OffsetResetError(f"by_duration {text!r} must not be negative")
    return int(total)


def initial_start_offset(
    reset: OffsetReset,
    log_start_offset: int,
    log_end_offset: int,
    now_ms: int,
    offset_for_timestamp: Callable[[int], int | None],
) -> int:
    """The first offset a new share-partition delivers.

    ``offset_for_timestamp(ts)`` is the first offset whose timestamp is >= ``ts`` (ListOffsets'
    answer), or None when no record is that recent."""
    if reset.strategy == EARLIEST:
        return log_start_offset
    if reset.strategy == LATEST:
        return log_end_offset
    found = offset_for_timestamp(now_ms - reset.duration_ms)
    return log_end_offset if found is None else max(found, log_start_offset)
