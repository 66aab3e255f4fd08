"""Responses shoal frames itself, and the writer they share.

kio's generic writer suits the many small, rare responses; the hot ones (Fetch, Produce) are
framed here: Fetch so that record bytes reach the socket uncopied, Produce because a small
fixed-shape answer per request is cheaper written field by field than walked generically.
Each is checked byte for byte against kio's encoding for every served version.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from typing import ClassVar, Final

from shoal.buffers import Buffer
from shoal.protocol.framing import encode_frame
from shoal.protocol.headers import encode_uvarint

_I16: Final = struct.Struct(">h")
_I32: Final = struct.Struct(">i")
_NO_TAGS: Final = b"\x00"


class FramedResponse(ABC):
    """A response that encodes its own frame (size prefix first) as buffers to write in order."""

    api_key: ClassVar[int]

    @abstractmethod
    def encode_frame(self, correlation_id: int, version: int) -> list[Buffer]: ...


class FrameWriter:
    """Collects small encoded fields into one pending ``bytearray``, and large byte fields
    (records) as their own buffers, so a response with N record sets is about 2N + 2 buffers
    however large it is, and no record byte is copied."""

    def __init__(self, *, flexible: bool) -> None:
        self.flexible = flexible
        self._parts: list[Buffer] = []
        self._pending = bytearray()

    def add(self, data: bytes) -> None:
        self._pending += data

    def tags(self) -> None:
        """An empty tagged-field section (flexible versions only)."""
        if self.flexible:
            self._pending += _NO_TAGS

    def array_length(self, count: int) -> None:
        self.add(encode_uvarint(count + 1) if self.flexible else _I32.pack(count))

    def null_array(self) -> None:
        self.add(encode_uvarint(0) if self.flexible else _I32.pack(-1))

    def string(self, value: str) -> None:
        encoded = value.encode()
        self.add(encode_uvarint(len(encoded) + 1) if self.flexible else _I16.pack(len(encoded)))
        self.add(encoded)

    def nullable_string(self, value: str | None) -> None:
        if value is None:
            self.add(encode_uvarint(0) if self.flexible else _I16.pack(-1))
        else:
            self.string(value)

    def records(self, data: Buffer) -> None:
        # Records are never sent null: librdkafka reads a null as a broken message set.
        size = len(data)
        self.add(encode_uvarint(size + 1) if self.flexible else _I32.pack(size))
        if size:
            self._flush()
            self._parts.append(data)

    def _flush(self) -> None:
        if self._pending:
            self._parts.append(bytes(self._pending))
            self._pending = bytearray()

    def frame(self) -> list[Buffer]:
        """The frame, size prefix first (:func:`~shoal.protocol.framing.encode_frame`: the parts
        are not joined; :class:`EncodeError` past the int32 size prefix)."""
        self._flush()
        return encode_frame(self._parts)
