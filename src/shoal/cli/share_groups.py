"""``shoal group list`` for KIP-932 share groups: librdkafka's group listing asks only for
classic and consumer groups, so the CLI sends ListGroups v5 with the ``share`` type filter
itself, over a plain TCP connection to the bootstrap broker (a single shoal node coordinates
every group). Plaintext listeners only, like group_members."""

from __future__ import annotations

import socket
from typing import Any, Final

from shoal.cli.group_members import RESPONSE_BYTES_MAX, receive_exactly, receive_frame_size
from shoal.protocol import RequestHeader, decode_response, encode_request
from shoal.protocol._kio import request_class
from shoal.protocol.build import build

LIST_GROUPS: Final = 16
VERSION: Final = 5
SHARE_TYPE: Final = "share"


def list_share_groups(host: str, port: int, timeout_s: float) -> list[tuple[str, str]]:
    """(group id, state) of every share group the broker coordinates. Raises OSError (or
    ConnectionError) when it cannot be asked."""
    body = build(
        request_class(LIST_GROUPS, VERSION), {"states_filter": [], "types_filter": [SHARE_TYPE]}
    )
    frame = encode_request(RequestHeader(LIST_GROUPS, VERSION, 1, "shoal-cli"), body)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(frame)
        size = receive_frame_size(sock)
        if not 0 <= size <= RESPONSE_BYTES_MAX:
            raise ConnectionError(f"the broker sent a frame of {size} bytes")
        _, response = decode_response(receive_exactly(sock, size), LIST_GROUPS, VERSION)
    answer: Any = response
    if int(answer.error_code) != 0:
        raise ConnectionError(f"ListGroups failed with error {int(answer.error_code)}")
    return sorted((g.group_id, g.group_state) for g in answer.groups)


def split_bootstrap(bootstrap: str) -> tuple[str, int]:
    """The first host:port of a bootstrap list ([v6]:port allowed)."""
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return host.strip("[]"), int(port)
