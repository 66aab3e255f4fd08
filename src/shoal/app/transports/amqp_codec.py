"""How a shoal record (key, value, headers) becomes an AMQP message and back, losslessly.

AMQP headers are a field table: unique names of at most 255 bytes, typed values, and an order
that brokers need not keep. Shoal headers are Kafka's: ordered, repeatable names, byte values.
So the exact list travels packed into one byte-array header, ``shoal.headers``; a byte array
(type ``x``) is the one field type RabbitMQ carries unchanged through quorum queues, streams and
dead-lettering (a nested array of arrays is dropped by 3.10 streams). ::

    shoal.headers = count:u32  then count times:  name_len:u32 name:utf-8  value_len:u32 value

For other AMQP clients, and for headers exchanges, each short text header is also *mirrored* as
a plain AMQP header (the last value of a repeated name wins, as ``Message.header`` does). On
receipt only ``shoal.headers`` counts; the mirrors are ignored.

The key is a byte string (``shoal.key``); the routing key is its UTF-8 text (invalid bytes
backslash-escaped), or the topic name for a record without a key. The record timestamp in ms is
``shoal.timestamp-ms`` (the AMQP ``timestamp`` property has whole seconds only).

A message without ``shoal.headers`` came from another AMQP publisher: its headers are taken as
they are (text as UTF-8, numbers in decimal), and its routing key is its key.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shoal.app.message import MESSAGE_ID_HEADER, Headers, Message
from shoal.app.resilience import dlq

HEADERS = "shoal.headers"
KEY = "shoal.key"
TIMESTAMP_MS = "shoal.timestamp-ms"
DELIVERY_PREFIX = "shoal.amqp."
"""Headers describing one delivery (redelivered, delivery count, death reason). Added on
receipt, dropped on send: they describe where a record has been, not the record."""
REDELIVERED = DELIVERY_PREFIX + "redelivered"
DELIVERY_COUNT = DELIVERY_PREFIX + "delivery-count"
DEATH_REASON = DELIVERY_PREFIX + "death-reason"
DELAY_QUEUE_PREFIX = "shoal.delay."

ROUTING_KEY_BYTES_MAX = 255
"""AMQP routing keys are short strings."""
HEADERS_BYTES_MAX = 96 * 1024
"""Properties travel in one content-header frame, which cannot be split, and RabbitMQ's
frame_max is 128 KiB; this leaves room for the mirrors and the broker's own headers."""
MIRROR_VALUE_BYTES_MAX = 256
"""Mirrors serve routing and inspection, which use short values; a traceback is not mirrored."""

_U32 = struct.Struct(">I")


class CodecError(ValueError):
    """A record that AMQP cannot carry (routing key or headers too large)."""


def routing_key(topic: str, key: bytes | None) -> str:
    text = topic if key is None else key.decode("utf-8", "backslashreplace")
    if len(text.encode()) > ROUTING_KEY_BYTES_MAX:
        raise CodecError(
            f"the key of a record for {topic} is longer than an AMQP routing key "
            f"({ROUTING_KEY_BYTES_MAX} bytes)"
        )
    return text


def pack_headers(headers: Headers) -> bytes:
    out = [_U32.pack(len(headers))]
    for name, value in headers:
        raw = name.encode()
        out += [_U32.pack(len(raw)), raw, _U32.pack(len(value)), value]
    return b"".join(out)


def unpack_headers(data: bytes) -> Headers:
    """The list ``pack_headers`` packed; ValueError if ``data`` is not such a list."""
    try:
        (count,) = _U32.unpack_from(data, 0)
        pos = _U32.size
        out: Headers = []
        for _ in range(count):
            (size,) = _U32.unpack_from(data, pos)
            name = data[pos + 4 : pos + 4 + size].decode()
            pos += 4 + size
            (size,) = _U32.unpack_from(data, pos)
            value = bytes(data[pos + 4 : pos + 4 + size])
            pos += 4 + size
            if pos > len(data):
                raise ValueError("truncated")
            out.append((name, value))
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"not a packed header list: {exc}") from exc
    if pos != len(data):
        raise ValueError("trailing bytes after the header list")
    return out


def _mirrorable(name: str, value: bytes) -> str | None:
    """The text value to mirror ``name`` with, or None when it is not mirrored."""
    if name.startswith("x-") or name in (HEADERS, KEY, TIMESTAMP_MS):
        return None  # x- names are the broker's (x-match, x-death); the others are ours
    if len(name.encode()) > ROUTING_KEY_BYTES_MAX or len(value) > MIRROR_VALUE_BYTES_MAX:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None


def amqp_properties(key: bytes | None, headers: Headers) -> dict[str, Any]:
    """Keyword arguments for ``aio_pika.Message`` (besides the body) carrying key and headers."""
    kept = [(n, v) for n, v in headers if not n.startswith(DELIVERY_PREFIX)]
    packed = pack_headers(kept)
    if len(packed) > HEADERS_BYTES_MAX:
        raise CodecError(f"headers of {len(packed)} bytes exceed {HEADERS_BYTES_MAX} bytes")
    table: dict[str, Any] = {}
    for name, value in kept:
        text = _mirrorable(name, value)
        if text is not None:
            table[name] = text
    now_ms = time.time_ns() // 1_000_000
    # bytearray, not bytes: pamqp encodes a bytearray as an AMQP byte array (type x).
    table[HEADERS] = bytearray(packed)
    table[TIMESTAMP_MS] = now_ms
    if key is not None:
        table[KEY] = bytearray(key)
    message_id = next((v for n, v in reversed(kept) if n == MESSAGE_ID_HEADER), None)
    return {
        "headers": table,
        "message_id": None if message_id is None else message_id.decode("utf-8", "replace"),
        "timestamp": datetime.fromtimestamp(now_ms / 1000, UTC),
        "app_id": "shoal",
    }


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return str(value).encode()


def _foreign_headers(table: Mapping[str, Any]) -> Headers:
    return [(n, _as_bytes(v)) for n, v in table.items() if not n.startswith("x-")]


def _death(table: Mapping[str, Any]) -> tuple[str, str] | None:
    """(exchange, reason) of the broker's latest dead-lettering of this message, unless that was
    a delayed retry coming due (which is how ``send_delayed`` works, not a failure).

    Queues keep ``x-death`` (latest first); RabbitMQ 3.10 streams drop that array of tables and
    keep only the ``x-first-death-*`` strings, so a record read from a journal is judged by its
    first death.
    """
    deaths = table.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        latest = deaths[0]
        queue, exchange, reason = (latest.get(k, "") for k in ("queue", "exchange", "reason"))
    elif "x-first-death-exchange" in table:
        queue, exchange, reason = (
            table.get(f"x-first-death-{k}", "") for k in ("queue", "exchange", "reason")
        )
    else:
        return None
    if str(queue).startswith(DELAY_QUEUE_PREFIX):
        return None
    return str(exchange), str(reason)


def decode_record(
    topic: str,
    offset: int,
    body: bytes,
    routing: str | None,
    table: Mapping[str, Any] | None,
    *,
    redelivered: bool = False,
) -> Message:
    """The shoal record an AMQP delivery carries, with the delivery's own facts appended."""
    table = table or {}
    packed = table.get(HEADERS)
    headers: Headers
    key: bytes | None
    try:
        if not isinstance(packed, bytes | bytearray):
            raise ValueError("no shoal.headers")
        headers = unpack_headers(bytes(packed))
        raw_key = table.get(KEY)
        key = bytes(raw_key) if isinstance(raw_key, bytes | bytearray) else None
    except ValueError:
        headers = _foreign_headers(table)
        key = routing.encode() if routing else None
    stamp = table.get(TIMESTAMP_MS)
    timestamp_ms = stamp if isinstance(stamp, int) and stamp > 0 else 0
    if redelivered:
        headers.append((REDELIVERED, b"true"))
        count = table.get("x-delivery-count")
        if isinstance(count, int) and count > 0:
            headers.append((DELIVERY_COUNT, str(count).encode()))
    death = _death(table)
    if death is not None and not any(n == dlq.ORIGINAL_TOPIC for n, _ in headers):
        # Dead-lettered by the broker (delivery limit, TTL), not by the App: say where it came
        # from, so that redrive can send it back.
        exchange, reason = death
        headers += [(dlq.ORIGINAL_TOPIC, exchange.encode()), (DEATH_REASON, reason.encode())]
    return Message(topic, 0, offset, key, body, headers, timestamp_ms)
