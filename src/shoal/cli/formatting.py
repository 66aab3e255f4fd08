"""How ``shoal consume`` prints a record: kcat's ``-f`` format strings, or one JSON object a line.

kcat tokens: ``%t`` topic, ``%p`` partition, ``%o`` offset, ``%k`` key, ``%s`` value, ``%T``
timestamp (ms, -1 if none), ``%h`` headers (``k=v,k2=v2``), ``%K``/``%S`` key/value length (-1
for null), ``%%`` a percent sign; escapes ``\\n``, ``\\t``, ``\\r``, ``\\\\``. Keys and values
are written as the raw bytes they are, as kcat does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any, Final

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TIMESTAMP_NOT_AVAILABLE, Message

Part = Callable[[Message], bytes]

DEFAULT_FORMAT: Final = "%s\\n"
"""kcat's default: the value, one a line."""


class FormatError(ValueError):
    """An unknown ``%`` token or a dangling ``%`` or ``\\``."""


def _length(data: bytes | None) -> bytes:
    return b"-1" if data is None else str(len(data)).encode()


def header_pairs(message: Message) -> list[tuple[str, bytes | None]]:
    headers = message.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [(name, None if value is None else _header_bytes(value)) for name, value in pairs]


def _headers(message: Message) -> bytes:
    return b",".join(name.encode() + b"=" + (value or b"") for name, value in header_pairs(message))


def _header_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _timestamp(message: Message) -> int:
    kind, ts = message.timestamp()
    return -1 if kind == TIMESTAMP_NOT_AVAILABLE else ts


_TOKENS: Final[dict[str, Part]] = {
    "t": lambda m: (m.topic() or "").encode(),
    "p": lambda m: str(m.partition()).encode(),
    "o": lambda m: str(m.offset()).encode(),
    "k": lambda m: m.key() or b"",
    "s": lambda m: m.value() or b"",
    "T": lambda m: str(_timestamp(m)).encode(),
    "h": _headers,
    "K": lambda m: _length(m.key()),
    "S": lambda m: _length(m.value()),
}
_ESCAPES: Final = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\"}


def compile_format(fmt: str) -> Callable[[Message], bytes]:
    """Parse ``fmt`` once into literal and field parts; raise :class:`FormatError` if bad."""
    parts: list[bytes | Part] = []
    literal = bytearray()
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char in "%\\":
            if i + 1 == len(fmt):
                raise FormatError(f"format ends with a lone {char!r}")
            spec = fmt[i + 1]
            if char == "%" and spec == "%":
                literal += b"%"
            elif char == "%":
                field = _TOKENS.get(spec)
                if field is None:
                    known = " ".join(f"%{t}" for t in _TOKENS)
                    raise FormatError(f"unknown format token %{spec} (known: {known} %%)")
                if literal:
                    parts.append(bytes(literal))
                    literal.clear()
                parts.append(field)
            else:
                escaped = _ESCAPES.get(spec)
                if escaped is None:
                    raise FormatError(f"unknown escape \\{spec} (known: \\n \\t \\r \\\\)")
                literal += escaped
            i += 2
        else:
            literal += char.encode()
            i += 1
    if literal:
        parts.append(bytes(literal))
    return _joiner(parts)


def _joiner(parts: Sequence[bytes | Part]) -> Callable[[Message], bytes]:
    def render(message: Message) -> bytes:
        return b"".join(p if isinstance(p, bytes) else p(message) for p in parts)

    return render


def _text_field(doc: dict[str, Any], name: str, data: bytes | None) -> None:
    """UTF-8 text as a JSON string; other bytes as base64 with ``<name>_encoding`` saying so,
    so that binary records survive the round trip instead of being mangled."""
    if data is None:
        doc[name] = None
        return
    try:
        doc[name] = data.decode("utf-8")
    except UnicodeDecodeError:
        doc[name] = base64.b64encode(data).decode("ascii")
        doc[f"{name}_encoding"] = "base64"


def json_line(message: Message) -> bytes:
    """One record as a JSON object (rpk's field names) and a newline."""
    kind, ts = message.timestamp()
    doc: dict[str, Any] = {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": None if kind == TIMESTAMP_NOT_AVAILABLE else ts,
        "timestamp_type": "LogAppendTime" if kind == TIMESTAMP_LOG_APPEND_TIME else "CreateTime",
    }
    _text_field(doc, "key", message.key())
    _text_field(doc, "value", message.value())
    headers = []
    for name, value in header_pairs(message):
        header: dict[str, Any] = {"key": name}
        _text_field(header, "value", value)
        headers.append(header)
    doc["headers"] = headers
    return json.dumps(doc, ensure_ascii=False).encode("utf-8") + b"\n"
