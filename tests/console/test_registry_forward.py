"""``shoal console`` forwards the registry API: never a path the HTTP client would resolve to
somewhere else on the registry's host (``..``, ``.``, empty segments, in any encoding)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.console.support import console_server
from tests.server.admin_support import TIMEOUT_S


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def console(upstream: tuple[str, list[str]]) -> Iterator[str]:
    # No broker: the registry forward needs none (port 1 refuses at once if anything tries).
    with console_server("127.0.0.1:1", upstream[0]) as url:
        yield url


def _raw_get(url: str, target: str) -> int:
    """The status of a GET sent with ``target`` byte for byte (clients would normalise it)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "target",
    [
        "/subjects/../admin/secret",
        "/subjects/../../admin/secret",
        "/subjects/%2e%2E/admin/secret",
        "/subjects/.%2e/x",
        "/subjects/%252e%252e/x",
        "/subjects/./x",
        "/subjects//x",
        "/schemas/ids/..",
    ],
)
def test_dot_segments_are_refused_and_never_forwarded(
    upstream: tuple[str, list[str]], console: str, target: str
) -> None:
    seen = upstream[1]
    before = len(seen)
    assert _raw_get(console, target) == 400
    assert seen[before:] == []


def test_a_plain_subject_path_is_forwarded_raw(
    upstream: tuple[str, list[str]], console: str
) -> None:
    seen = upstream[1]
    assert _raw_get(console, "/subjects/a%2Fb.c/versions") == 200
    assert seen[-1] == "/subjects/a%2Fb.c/versions"
