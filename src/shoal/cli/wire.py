"""One Kafka request over a plain TCP connection, for the few CLI commands whose request
confluent-kafka's admin API does not send (ConsumerGroupDescribe with member epochs, ListGroups
of share groups, the transaction admin requests).

Only PLAINTEXT listeners: the CLI's SASL and TLS settings are librdkafka's, and each command
that uses this module says so (or falls back) when they are set.
"""

from __future__ import annotations

import itertools
import socket
import struct
from typing import Any, Final

CLIENT_ID: Final = "shoal-cli"
RESPONSE_BYTES_MAX: Final = 64 * 1024 * 1024
"""A bound on one answer read (thousands of groups, members or transactions are a few MB)."""
_SIZE: Final = struct.Struct(">i")
_correlation = itertools.count(1)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 16))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return bytes(data)


def exchange(
    address: tuple[str, int], api_key: int, version: int, body: dict[str, Any], timeout_s: float
) -> bytes:
    """Send one request to ``address`` and return its response frame (header included).
    Raises OSError (or ConnectionError) when the broker cannot be asked."""
    # Imported here, not at the top: the protocol's message classes (kio) take a few hundred ms
    # to import, and the commands that import this module need them only when they send.
    from shoal.protocol import RequestHeader, encode_request
    from shoal.protocol._kio import request_class
    from shoal.protocol.build import build

    message = build(request_class(api_key, version), body)
    header = RequestHeader(api_key, version, next(_correlation), CLIENT_ID)
    with socket.create_connection(address, timeout=timeout_s) as sock:
        sock.sendall(encode_request(header, message))
        (size,) = _SIZE.unpack(_receive(sock, _SIZE.size))
        if not 0 <= size <= RESPONSE_BYTES_MAX:
            raise ConnectionError(f"the broker sent a frame of {size} bytes")
        return _receive(sock, size)


def request(
    address: tuple[str, int], api_key: int, version: int, body: dict[str, Any], timeout_s: float
) -> Any:
    """Send one request to ``address`` and return its decoded response."""
    from shoal.protocol import decode_response  # see exchange

    frame = exchange(address, api_key, version, body, timeout_s)
    _, response = decode_response(frame, api_key, version)
    return response
