"""Malformed frames and requests against a live broker, on raw sockets.

A frame whose size prefix is unusable, or a request that cannot be decoded, closes that one
connection without an answer (what a Kafka broker does: it cannot trust the rest of the
stream). Everything else gets an answer on a connection that stays open. After every case the
healthy client on another connection must still produce and read back (``arena.healthy``).
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shoal.protocol import ErrorCode, decode_response
from tests.server.support import Arena
from tests.server.wire import (
    API_VERSIONS_VERSION,
    METADATA_VERSION,
    WireClient,
    batch_of,
    produce_values,
    request_frame,
)

I16 = struct.Struct(">h")
I32 = struct.Struct(">i")
MAX_FRAME_BYTES = 100 * 1024 * 1024
"""The server's default socket.request.max.bytes."""


def frame(body: bytes) -> bytes:
    return I32.pack(len(body)) + body


def header_v1(
    api_key: int, version: int, correlation_id: int = 7, client_id: bytes = b"t"
) -> bytes:
    return struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id


def kafka_string(text: bytes) -> bytes:
    return I16.pack(len(text)) + text


def metadata_v1_topics(*names: bytes) -> bytes:
    return I32.pack(len(names)) + b"".join(kafka_string(n) for n in names)


def produce_v0_request(version: int) -> bytes:
    """A well-formed Produce v0-v2 request carrying a magic-0 message set, built by hand (kio
    has no classes for versions Kafka 4 removed)."""
    key, value = b"k", b"v"
    message = struct.pack(">bb", 0, 0) + I32.pack(len(key)) + key + I32.pack(len(value)) + value
    message = struct.pack(">I", zlib.crc32(message)) + message
    message_set = struct.pack(">qi", 0, len(message)) + message
    body = (
        struct.pack(">hi", 1, 10_000)  # acks=1, timeout
        + I32.pack(1)
        + kafka_string(b"healthy")
        + I32.pack(1)
        + I32.pack(0)
        + I32.pack(len(message_set))
        + message_set
    )
    return frame(header_v1(0, version) + body)


def api_versions_v0(correlation_id: int) -> bytes:
    return request_frame(18, 0, {}, correlation_id=correlation_id)


def metadata_v12(topics: list[str] | None, correlation_id: int = 7) -> bytes:
    return request_frame(
        3,
        METADATA_VERSION,
        {
            "topics": None if topics is None else [{"name": t} for t in topics],
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
        correlation_id=correlation_id,
    )


def truncated(request: bytes, cut: int) -> bytes:
    """The request with its last ``cut`` body bytes removed and the size prefix adjusted."""
    body = request[4:-cut]
    return frame(body)


def with_trailing(request: bytes, extra: bytes) -> bytes:
    return frame(request[4:] + extra)


def flexible_header_with_tags(tags: bytes) -> bytes:
    """Request header v2 for ApiVersions v3 with a raw tagged-field section."""
    return header_v1(18, 3) + tags


OVERLONG_UVARINT = b"\xff\xff\xff\xff\xff\x01"


# Each case: bytes that must make the broker close this connection without answering.
CLOSING_CASES: dict[str, Callable[[], bytes]] = {
    "negative size -1": lambda: I32.pack(-1) + b"\x00" * 16,
    "negative size int32 min": lambda: I32.pack(-(2**31)),
    "size one past the limit": lambda: I32.pack(MAX_FRAME_BYTES + 1) + b"\x00" * 10,
    "size int32 max": lambda: I32.pack(2**31 - 1) + b"\x00" * 10,
    "HTTP request": lambda: b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "TLS client hello": lambda: bytes.fromhex("160301020001000200") + b"\x00" * 32,
    "empty frame": lambda: frame(b""),
    "frame shorter than the header prefix": lambda: frame(b"\x00\x12\x00\x03\x00"),
    "unknown api key 999": lambda: frame(header_v1(999, 0)),
    "unknown api key -1": lambda: frame(header_v1(-1, 0)),
    "api key 57 (not served)": lambda: frame(header_v1(57, 0)),
    "Metadata v14 (above max)": lambda: frame(header_v1(3, 14) + I32.pack(-1)),
    "Fetch v3 (below min)": lambda: frame(header_v1(1, 3) + b"\x00" * 40),
    "Produce v14 (above max)": lambda: frame(header_v1(0, 14) + b"\x00" * 40),
    "negative api version": lambda: frame(header_v1(3, -1) + I32.pack(-1)),
    "client id length past the end": lambda: frame(struct.pack(">hhih", 3, 1, 7, 200) + b"ab"),
    "client id length -2": lambda: frame(struct.pack(">hhih", 3, 1, 7, -2) + I32.pack(-1)),
    "header cut inside the client id length": lambda: frame(struct.pack(">hhi", 3, 1, 7) + b"\x00"),
    "tagged field count overlong varint": lambda: frame(
        flexible_header_with_tags(OVERLONG_UVARINT) + b"\x00\x00\x00"
    ),
    "tagged field size past the end": lambda: frame(
        flexible_header_with_tags(b"\x01\x00\x7f" + b"x" * 3)
    ),
    "tagged field count runs off the frame": lambda: frame(flexible_header_with_tags(b"\x80")),
    "Metadata v1 array count past the end": lambda: frame(
        header_v1(3, 1) + I32.pack(1000) + kafka_string(b"a")
    ),
    "Metadata v1 array count -2": lambda: frame(header_v1(3, 1) + I32.pack(-2)),
    "Metadata v1 string length past the end": lambda: frame(
        header_v1(3, 1) + I32.pack(1) + I16.pack(500) + b"abc"
    ),
    "Metadata v1 string length -5": lambda: frame(
        header_v1(3, 1) + I32.pack(1) + I16.pack(-5) + b"abc"
    ),
    "Metadata v12 compact array overlong varint": lambda: frame(
        header_v1(3, 12) + b"\x00" + OVERLONG_UVARINT + b"\x00\x00"
    ),
    "Metadata v12 truncated by one byte": lambda: truncated(metadata_v12(["a", "b"]), 1),
    "Metadata v12 truncated to its header": lambda: truncated(metadata_v12(["a"]), 6),
    "ApiVersions v3 software name past the end": lambda: frame(
        header_v1(18, 3) + b"\x00" + b"\x7f" + b"abc"
    ),
    "Produce v9 records length past the end": lambda: truncated(
        request_frame(0, 9, produce_values("healthy", 0, batch_of([b"x" * 100]))), 50
    ),
    "Produce v0 (removed in Kafka 4)": lambda: produce_v0_request(0),
    "Produce v1 (removed in Kafka 4)": lambda: produce_v0_request(1),
    "Produce v2 (removed in Kafka 4)": lambda: produce_v0_request(2),
}


@pytest.mark.parametrize("case", sorted(CLOSING_CASES))
def test_bad_input_closes_only_that_connection(arena: Arena, case: str) -> None:
    with WireClient(arena.bootstrap) as client:
        client.send_raw(CLOSING_CASES[case]())
        answer = client.wait_closed()
    assert answer == b"", f"the broker answered {answer[:64]!r} before closing"
    arena.healthy.assert_progress()


def test_the_controls_are_answered(arena: Arena) -> None:
    """The well-formed requests the cases above corrupt are answered (so the closes above are
    caused by the corruption, not by the request itself)."""
    with WireClient(arena.bootstrap) as client:
        client.send_raw(frame(header_v1(3, 1) + metadata_v1_topics(b"healthy")))
        got, body = decode_response(client.read_frame(), 3, 1)
        assert got == 7
        assert [t.name for t in body.topics] == ["healthy"]
        client.send_raw(metadata_v12(["healthy"], correlation_id=8))
        got, body = decode_response(client.read_frame(), 3, METADATA_VERSION)
        assert (got, body.topics[0].error_code) == (8, ErrorCode.NONE)
        client.send_raw(request_frame(0, 9, produce_values("healthy", 0, batch_of([b"x"]))))
        got, body = decode_response(client.read_frame(), 0, 9)
        assert body.responses[0].partition_responses[0].error_code == ErrorCode.NONE
        client.send_raw(frame(header_v1(18, 3) + b"\x00" + b"\x02x\x021\x00"))
        got, body = decode_response(client.read_frame(), 18, 3)
        assert body.error_code == ErrorCode.NONE


def test_bytes_after_a_request_body_are_ignored(arena: Arena) -> None:
    """As Kafka does (librdkafka 2.16 sends a few after Metadata v13)."""
    with WireClient(arena.bootstrap) as client:
        client.send_raw(with_trailing(metadata_v12(["healthy"], correlation_id=9), b"\x00\x07"))
        got, body = decode_response(client.read_frame(), 3, METADATA_VERSION)
    assert (got, body.topics[0].name, body.topics[0].error_code) == (9, "healthy", 0)


def test_api_versions_with_a_future_version_gets_the_v0_fallback(arena: Arena) -> None:
    """KIP-511: a v0 answer with UNSUPPORTED_VERSION and the ApiVersions range, on a connection
    that stays open so the client can retry with a version both sides know."""
    with WireClient(arena.bootstrap) as client:
        client.send_raw(frame(header_v1(18, 127, correlation_id=41) + b"\x00" * 8))
        got, body = decode_response(client.read_frame(), 18, 0)
        assert got == 41
        assert body.error_code == ErrorCode.UNSUPPORTED_VERSION
        ranges = {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in body.api_keys}
        assert ranges[18] == (0, 4)
        retry = client.api_versions(API_VERSIONS_VERSION)
        assert retry.error_code == ErrorCode.NONE
    arena.healthy.assert_progress()


def test_api_versions_advertises_produce_from_v0(arena: Arena) -> None:
    """KAFKA-18659: Produce v0 is advertised (librdkafka needs it to enable compression) even
    though v0-v2 requests are refused, as Kafka 4 does."""
    with WireClient(arena.bootstrap) as client:
        body = client.api_versions(API_VERSIONS_VERSION)
    ranges = {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in body.api_keys}
    assert ranges[0][0] == 0
    assert ranges[0][1] >= 9


def test_null_client_id_is_accepted(arena: Arena) -> None:
    with WireClient(arena.bootstrap, client_id=None) as client:
        assert client.api_versions(API_VERSIONS_VERSION).error_code == ErrorCode.NONE


def test_whole_frames_before_a_bad_size_prefix_are_answered(arena: Arena) -> None:
    """Bytes are read frame by frame: requests that arrived whole before a bad size prefix are
    answered, in order, and only then is the connection closed."""
    with WireClient(arena.bootstrap) as client:
        client.send_raw(api_versions_v0(1) + api_versions_v0(2) + I32.pack(-1))
        stream = client.wait_closed()
    correlation_ids = []
    while stream:
        (size,) = I32.unpack_from(stream)
        got, body = decode_response(stream[4 : 4 + size], 18, 0)
        assert body.error_code == ErrorCode.NONE
        correlation_ids.append(got)
        stream = stream[4 + size :]
    assert correlation_ids == [1, 2]
    arena.healthy.assert_progress()


def test_pipelined_requests_are_answered_in_order(arena: Arena) -> None:
    """A Fetch that parks (no data yet) does not let the requests behind it overtake it."""
    requests: list[tuple[int, int, dict[str, Any]]] = []
    fetch = {
        "replica_id": -1,
        "max_wait": 150,
        "min_bytes": 1,
        "max_bytes": 1 << 20,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {
                "topic": "pipelined",
                "partitions": [
                    {
                        "partition": 0,
                        "current_leader_epoch": -1,
                        "fetch_offset": 0,
                        "log_start_offset": -1,
                        "partition_max_bytes": 1 << 20,
                    }
                ],
            }
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }
    requests.append(
        (
            3,
            METADATA_VERSION,
            {"topics": [{"name": "pipelined"}], "allow_auto_topic_creation": True},
        )
    )
    for _ in range(3):
        requests.append((1, 11, fetch))
        requests.append((18, 3, {"client_software_name": "p", "client_software_version": "1"}))
    with WireClient(arena.bootstrap) as client:
        sent = b""
        for correlation_id, (key, version, values) in enumerate(requests, start=100):
            sent += request_frame(key, version, values, correlation_id=correlation_id)
        client.send_raw(sent)
        for correlation_id, (key, version, _) in enumerate(requests, start=100):
            got, _body = decode_response(client.read_frame(), key, version)
            assert got == correlation_id


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_errors() -> Iterator[ErrorLog]:
    """ERROR records of the (embedded) broker's loggers: a handler that raised, a task that
    failed."""
    handler = ErrorLog()
    loggers = [logging.getLogger("shoal"), logging.getLogger("asyncio")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def test_null_for_a_non_nullable_array_is_refused_quietly(
    arena: Arena, server_errors: ErrorLog
) -> None:
    """Kafka cannot parse such a request and closes the connection; so does shoal, but it must
    not take a handler failure (and a traceback in the log, per bad request) to get there."""
    empty_fetch = request_frame(
        1, 4, {"replica_id": -1, "max_wait": 0, "min_bytes": 0, "max_bytes": 100, "topics": []}
    )
    null_topics = empty_fetch[:-4] + I32.pack(-1)  # the topics array is the last field
    with WireClient(arena.bootstrap) as client:
        client.send_raw(null_topics)
        assert client.wait_closed() == b""
    arena.healthy.assert_progress()
    assert not server_errors.records, [r.getMessage() for r in server_errors.records]


def test_end_of_stream_mid_frame(arena: Arena) -> None:
    """A client that disconnects half-way through a frame leaves nothing behind."""
    request = metadata_v12(["healthy"])
    for cut in (1, 3, 4, 5, len(request) // 2, len(request) - 1):
        with WireClient(arena.bootstrap) as client:
            client.send_raw(request[:cut])
    arena.healthy.assert_progress()
    with WireClient(arena.bootstrap) as client:
        assert client.metadata(["healthy"]).topics[0].error_code == ErrorCode.NONE
