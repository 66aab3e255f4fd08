"""Zigzag varints as RecordBatch v2 records use them (protobuf's encoding, signed via zigzag).

Each byte carries seven bits, least significant group first; the high bit says "more follows".
The unsigned result ``u`` maps back to a signed value as ``(u >> 1) ^ -(u & 1)``.

Decoding is strict, because these bytes come from clients: a varint that needs more bytes than
its type allows (5 for int32, 10 for int64), or whose value does not fit the type, is corrupt.
Java's reader rejects the first but silently truncates the second; accepting either would let
two readers see different values in the same bytes. Non-minimal encodings that still fit
(``80 00`` for 0) are accepted, as every Kafka reader does.
"""

from __future__ import annotations

from typing import Final

from shoal.records.errors import CorruptBatchError

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

VARINT_BYTES_MAX: Final = 5
"""ceil(32 / 7): the most bytes a zigzag int32 may take."""

VARLONG_BYTES_MAX: Final = 10
"""ceil(64 / 7): the most bytes a zigzag int64 may take."""

_UINT32_MAX: Final = 2**32 - 1
_UINT64_MAX: Final = 2**64 - 1

# Single-byte encodings are by far the most common (small deltas, short keys, -1 for null), so
# they come from a table instead of being built each time.
_ONE_BYTE: Final = tuple(bytes((n,)) for n in range(0x80))


def _read_unsigned(data: bytes, pos: int, end: int, bytes_max: int) -> tuple[int, int]:
    """Read the raw (still zigzagged) varint at ``pos``; ``end`` bounds where it may reach."""
    result = 0
    shift = 0
    stop = min(end, pos + bytes_max)
    while pos < stop:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    if pos >= end:
        raise CorruptBatchError(f"varint runs past the end of its record at byte {pos}")
    raise CorruptBatchError(f"varint longer than {bytes_max} bytes ending at byte {pos}")


def read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode a zigzag int32 at ``pos``; return ``(value, position after it)``.

    Raises :class:`CorruptBatchError` if it is longer than 5 bytes, does not fit in 32 bits, or
    would read at or beyond ``end``.
    """
    # Fast paths for one and two bytes (values up to +-8191): nearly every varint in a record.
    if pos + 1 < end:
        byte = data[pos]
        if byte < 0x80:
            return (byte >> 1) ^ -(byte & 1), pos + 1
        second = data[pos + 1]
        if second < 0x80:
            raw = (byte & 0x7F) | (second << 7)
            return (raw >> 1) ^ -(raw & 1), pos + 2
    raw, new_pos = _read_unsigned(data, pos, end, VARINT_BYTES_MAX)
    if raw > _UINT32_MAX:
        raise CorruptBatchError(f"varint at byte {pos} does not fit in 32 bits")
    return (raw >> 1) ^ -(raw & 1), new_pos


def read_varlong(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode a zigzag int64 at ``pos``; return ``(value, position after it)``.

    Raises :class:`CorruptBatchError` if it is longer than 10 bytes, does not fit in 64 bits, or
    would read at or beyond ``end``.
    """
    if pos + 1 < end:
        byte = data[pos]
        if byte < 0x80:
            return (byte >> 1) ^ -(byte & 1), pos + 1
        second = data[pos + 1]
        if second < 0x80:
            raw = (byte & 0x7F) | (second << 7)
            return (raw >> 1) ^ -(raw & 1), pos + 2
    raw, new_pos = _read_unsigned(data, pos, end, VARLONG_BYTES_MAX)
    if raw > _UINT64_MAX:
        raise CorruptBatchError(f"varlong at byte {pos} does not fit in 64 bits")
    return (raw >> 1) ^ -(raw & 1), new_pos


def encode_varint(value: int) -> bytes:
    """Encode ``value`` (any int64; int32 values encode identically) as a zigzag varint.

    The caller guarantees the range: for int32 fields a value outside int32 would produce a
    varint that strict readers (this module's included) reject.
    """
    # For -2**63 <= value < 2**63, ``value >> 63`` is 0 or -1, which is zigzag's sign mask.
    raw = (value << 1) ^ (value >> 63)
    if 0 <= raw < 0x80:
        return _ONE_BYTE[raw]
    if not 0 <= raw <= _UINT64_MAX:
        raise ValueError(f"{value} does not fit in a 64-bit varint")
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def varint_size(value: int) -> int:
    """Bytes that :func:`encode_varint` produces for ``value``."""
    raw = (value << 1) ^ (value >> 63)
    size = 1
    while raw >= 0x80:
        raw >>= 7
        size += 1
    return size
