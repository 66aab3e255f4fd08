"""The seam for payload formats beyond shoal's built-in JSON: a codec turns values into bytes
and back, possibly asking a schema registry on the way (hence async).

A subscriber or publisher declared with ``codec=`` uses it instead of the JSON serde; a decode
error of any kind is the record's fault, so it goes to the DLQ without retries, like an
undecodable JSON payload.
"""

from __future__ import annotations

from typing import Any, Protocol


class Codec(Protocol):
    async def encode(self, topic: str, value: object) -> bytes:
        """The wire bytes of ``value`` for ``topic`` (registering its schema if configured)."""
        ...

    async def decode(self, topic: str, raw: bytes) -> Any:
        """The value in ``raw``, read with the schema it names (Confluent's wire format)."""
        ...
