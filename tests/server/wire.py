"""A minimal blocking Kafka client over a raw socket, for tests that send the broker bad bytes.

Requests are built with shoal's own codec (:func:`shoal.protocol.encode_request`) from plain
values (:func:`shoal.protocol.build.build`), so a test can send any API at any version, and
anything else: a wrong size prefix, a truncated body, garbage. Responses are decoded with
:func:`shoal.protocol.decode_response`.
"""

from __future__ import annotations

import datetime
import itertools
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from shoal.protocol import RequestHeader, decode_response, encode_request
from shoal.protocol._kio import request_class
from shoal.protocol.build import build
from shoal.records import SimpleRecord, build_batch, iter_records, split_batches

IO_TIMEOUT_S: Final = 15.0
"""How long a test waits for one answer before calling the broker stuck. Generous, because CI
runs the suite on two loaded cores; it bounds a hang, it does not measure anything."""

FRAME_BYTES_MAX: Final = 64 * 1024 * 1024
"""A bound on what the test client accepts in one response."""

PRODUCE_VERSION: Final = 9
FETCH_VERSION: Final = 11
METADATA_VERSION: Final = 12
API_VERSIONS_VERSION: Final = 3

NO_LEADER_YET: Final = frozenset({5, 6})
"""LEADER_NOT_AVAILABLE and NOT_LEADER_OR_FOLLOWER: what a new topic's partition answers until
its leader is known."""

NEW_TOPIC_NOT_READY: Final = NO_LEADER_YET | {3}
"""NO_LEADER_YET, and UNKNOWN_TOPIC_OR_PARTITION: on a loaded machine Apache Kafka's broker may
answer a Produce before its metadata image holds a topic CreateTopics already returned."""

_SIZE: Final = struct.Struct(">i")
T = TypeVar("T")


class ClosedByPeer(ConnectionError):
    """The broker closed the connection (EOF or reset)."""


def wait_until(read: Callable[[], T], done: Callable[[T], bool]) -> T:
    """Poll ``read`` until ``done`` holds or IO_TIMEOUT_S passes; return the last value read.

    The broker releases a closed connection asynchronously; this bounds how long a test waits
    for that, and the caller asserts on the value it returns."""
    deadline = time.monotonic() + IO_TIMEOUT_S
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.02)
        value = read()
    return value


def host_port(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.rpartition(":")
    return host, int(port)


class WireClient:
    """One TCP connection to the broker, speaking requests built from plain values."""

    def __init__(self, bootstrap: str, *, client_id: str | None = "shoal-wire-test") -> None:
        self.sock = socket.create_connection(host_port(bootstrap), timeout=IO_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self._correlation = itertools.count(1)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw bytes ---------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClosedByPeer("the broker closed the connection while we were sending") from exc

    def half_close(self) -> None:
        """Send end of stream (FIN) and keep reading what the broker sends back."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # ENOTCONN: the broker has reset the connection already
            raise ClosedByPeer("the broker closed the connection first") from exc

    def _recv_exactly(self, size: int) -> bytes:
        chunks = []
        remaining = size
        while remaining:
            try:
                chunk = self.sock.recv(min(remaining, 1 << 20))
            except ConnectionResetError as exc:
                raise ClosedByPeer("connection reset by the broker") from exc
            if not chunk:
                raise ClosedByPeer("the broker closed the connection")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def read_frame(self) -> bytes:
        """The next response frame body; :class:`ClosedByPeer` if the broker closed instead."""
        (size,) = _SIZE.unpack(self._recv_exactly(4))
        assert 0 <= size <= FRAME_BYTES_MAX, f"broker sent a frame size of {size}"
        return self._recv_exactly(size)

    def wait_closed(self) -> bytes:
        """Read until the broker closes the connection; return what it sent meanwhile.

        Fails (socket timeout) if the broker keeps the connection open for IO_TIMEOUT_S.
        """
        received = bytearray()
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return bytes(received)
            if not chunk:
                return bytes(received)
            received += chunk

    # -- requests ----------------------------------------------------------------------

    def encode(self, api_key: int, version: int, values: Mapping[str, Any]) -> tuple[int, bytes]:
        correlation_id = next(self._correlation)
        frame = request_frame(
            api_key, version, values, correlation_id=correlation_id, client_id=self.client_id
        )
        return correlation_id, frame

    def send(self, api_key: int, version: int, values: Mapping[str, Any]) -> int:
        correlation_id, frame = self.encode(api_key, version, values)
        self.send_raw(frame)
        return correlation_id

    def receive(self, api_key: int, version: int, correlation_id: int) -> Any:
        frame = self.read_frame()
        got, body = decode_response(frame, api_key, version)
        assert got == correlation_id, f"response for correlation id {got}, not {correlation_id}"
        return body

    def request(self, api_key: int, version: int, values: Mapping[str, Any]) -> Any:
        return self.receive(api_key, version, self.send(api_key, version, values))

    # -- the common requests -----------------------------------------------------------

    def produce(
        self,
        topic: str,
        partition: int,
        records: bytes,
        *,
        acks: int = 1,
        version: int = PRODUCE_VERSION,
    ) -> Any:
        """Send one partition's records; return that partition's response (None for acks=0)."""
        values = produce_values(topic, partition, records, acks=acks)
        if acks == 0:
            self.send(0, version, values)
            return None
        response = self.request(0, version, values)
        return response.responses[0].partition_responses[0]

    def produce_once_led(
        self, topic: str, partition: int, records: bytes, *, wait_s: float = 30.0
    ) -> Any:
        """``produce`` to a topic just created, repeated (bounded) while the partition is not
        ready yet: Apache Kafka answers NOT_LEADER_OR_FOLLOWER (or, loaded,
        UNKNOWN_TOPIC_OR_PARTITION) for a moment after CreateTopics returns."""
        deadline = time.monotonic() + wait_s
        answer = self.produce(topic, partition, records)
        while answer.error_code in NEW_TOPIC_NOT_READY and time.monotonic() < deadline:
            time.sleep(0.1)
            answer = self.produce(topic, partition, records)
        return answer

    def fetch(self, topic: str, partition: int, offset: int, *, max_bytes: int = 1 << 20) -> Any:
        """Fetch from one partition without waiting; return that partition's response."""
        values = fetch_values(topic, offset, partition=partition, max_bytes=max_bytes)
        response = self.request(1, FETCH_VERSION, values)
        return response.responses[0].partitions[0]

    def metadata(self, topics: Sequence[str] | None, *, auto_create: bool = True) -> Any:
        return self.request(
            3,
            METADATA_VERSION,
            {
                "topics": None if topics is None else [{"name": t} for t in topics],
                "allow_auto_topic_creation": auto_create,
                "include_topic_authorized_operations": False,
            },
        )

    def api_versions(self, version: int = API_VERSIONS_VERSION) -> Any:
        return self.request(
            18,
            version,
            {"client_software_name": "shoal-wire-test", "client_software_version": "1"},
        )


def request_frame(
    api_key: int,
    version: int,
    values: Mapping[str, Any],
    *,
    correlation_id: int = 7,
    client_id: str | None = "shoal-wire-test",
) -> bytes:
    """A complete request frame (size prefix included) built from plain values."""
    body = build(request_class(api_key, version), values)
    return encode_request(RequestHeader(api_key, version, correlation_id, client_id), body)


def fetch_values(
    topic: str | None,
    offset: int,
    *,
    partition: int = 0,
    max_bytes: int = 1 << 20,
    max_wait_ms: int = 0,
    min_bytes: int = 0,
    topic_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """A Fetch of one partition from ``offset`` (no fetch session); waits only if asked.

    Fetch v13+ names the topic by ``topic_id`` (pass ``topic=None``), older versions by name.
    """
    return {
        "replica_id": -1,
        "max_wait": datetime.timedelta(milliseconds=max_wait_ms),
        "min_bytes": min_bytes,
        "max_bytes": max_bytes,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {
                "topic": topic,
                "topic_id": topic_id,
                "partitions": [
                    {
                        "partition": partition,
                        "current_leader_epoch": -1,
                        "fetch_offset": offset,
                        "log_start_offset": -1,
                        "partition_max_bytes": max_bytes,
                    }
                ],
            }
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }


def produce_values(
    topic: str, partition: int, records: bytes | None, *, acks: int = 1
) -> dict[str, Any]:
    return {
        "transactional_id": None,
        "acks": acks,
        "timeout": datetime.timedelta(seconds=10),
        "topic_data": [
            {"name": topic, "partition_data": [{"index": partition, "records": records}]}
        ],
    }


def batch_of(values: Sequence[bytes], *, key_prefix: bytes = b"k") -> bytes:
    """An uncompressed batch with one record per value, keyed ``key_prefix + index``."""
    now_ms = int(time.time() * 1000)
    return build_batch(
        [
            SimpleRecord(key=key_prefix + str(i).encode(), value=v, timestamp=now_ms)
            for i, v in enumerate(values)
        ]
    )


def record_values(fetched_records: bytes | None) -> list[bytes | None]:
    """The values of every record in a Fetch response's records bytes."""
    if not fetched_records:
        return []
    values: list[bytes | None] = []
    view = memoryview(fetched_records)
    for position, size in split_batches(view):
        batch = view[position : position + size]
        values.extend(r.value for r in iter_records(batch, max_uncompressed_bytes=FRAME_BYTES_MAX))
    return values


@dataclass
class HealthyClient:
    """A well-behaved client on its own connection, producing and reading back in a loop.

    Runs on a thread while a test attacks the broker on other connections. Each round trip
    produces one record (acks=1) and fetches it back by the offset the broker gave; any error
    code, wrong value, or dropped connection is recorded as a failure and ends the loop.
    """

    bootstrap: str
    topic: str
    round_trips: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _progress: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None

    def start(self) -> HealthyClient:
        with WireClient(self.bootstrap) as client:
            response = client.metadata([self.topic])
            assert response.topics[0].error_code == 0, response
        self._thread = threading.Thread(target=self._run, name="healthy-client", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with WireClient(self.bootstrap, client_id="healthy") as client:
                for n in itertools.count():
                    if self._stop.is_set():
                        return
                    self._round_trip(client, n)
                    with self._progress:
                        self.round_trips += 1
                        self._progress.notify_all()
        except Exception as exc:
            with self._progress:
                self.failures.append(f"after {self.round_trips} round trips: {exc!r}")
                self._progress.notify_all()

    def _round_trip(self, client: WireClient, n: int) -> None:
        value = f"healthy-{n}".encode()
        produced = client.produce(self.topic, 0, batch_of([value]))
        if produced.error_code != 0:
            raise AssertionError(f"produce failed with error {produced.error_code}")
        fetched = client.fetch(self.topic, 0, produced.base_offset)
        if fetched.error_code != 0:
            raise AssertionError(f"fetch failed with error {fetched.error_code}")
        got = record_values(fetched.records)
        if not got or got[0] != value:
            raise AssertionError(f"fetched {got[:1]!r} at {produced.base_offset}, not {value!r}")

    def assert_progress(self, round_trips: int = 2) -> None:
        """Wait until ``round_trips`` more round trips succeed; fail on an error or a stall."""
        with self._progress:
            target = self.round_trips + round_trips
            self._progress.wait_for(
                lambda: self.failures or self.round_trips >= target, timeout=IO_TIMEOUT_S
            )
            assert not self.failures, f"the healthy client failed: {self.failures}"
            assert self.round_trips >= target, (
                f"the healthy client stalled at {self.round_trips} round trips"
            )

    def stop(self, *, check: bool = True) -> None:
        """Stop the loop; with ``check``, fail if any round trip failed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(IO_TIMEOUT_S)
        if check:
            assert not self.failures, f"the healthy client failed: {self.failures}"
