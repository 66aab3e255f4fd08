"""Hypothesis against a live broker: random well-formed requests of every served API and
version, mutated requests, and random byte streams, each on a fresh connection.

Properties, checked for every example:

- a well-formed request is answered (in order, with its correlation id) on a connection that
  stays open, and no handler fails on it (nothing is logged at ERROR);
- a malformed one is answered or closes that connection, and never hangs it;
- the healthy client on another connection keeps producing and reading back.

The broker runs in a child process: bytes that crash it must fail the test, not kill pytest.
Examples are not shrunk: the broker's state carries over from one to the next, so a shrunk
example would not replay what failed; the falsifying example is printed as found.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shoal.broker.handlers import HANDLERS
from shoal.protocol import RequestHeader, decode_response, encode_request, restrict_to
from shoal.protocol._kio import request_class
from tests.protocol.kio_values import message_strategy
from tests.server.support import FETCH_WAIT_MS_MAX, HEALTHY_TOPIC
from tests.server.wire import ClosedByPeer, HealthyClient, WireClient, request_frame
from tests.support.broker import BrokerProcess

pytestmark = pytest.mark.integration

I32: Final = struct.Struct(">i")
PROBE_CORRELATION_ID: Final = 0x5EA1
LIVE_FUZZ = settings(
    max_examples=int(os.environ.get("SHOAL_LIVE_FUZZ_EXAMPLES", "120")),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KNOWN_ABORT: Final = "memory allocation of"
"""How the child dies when kio's native reader preallocates an array from a forged count (see
test_broker_process.py::test_huge_compact_array_count_does_not_kill_the_broker)."""

SERVED: Final = [
    (int(key), version)
    for key, entry in sorted(restrict_to(HANDLERS.keys()).items())
    for version in range(entry.min_version, entry.max_version + 1)
]


@dataclass
class ChildArena:
    process: BrokerProcess
    healthy: HealthyClient

    @property
    def bootstrap(self) -> str:
        return self.process.bootstrap_servers

    def errors_logged(self) -> list[str]:
        return [
            line
            for line in self.process.log_text().splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
        ]


@pytest.fixture
def arena(broker_process: Callable[..., BrokerProcess]) -> Iterator[ChildArena]:
    process = broker_process(broker_config={"fetch_max_wait_ms_max": FETCH_WAIT_MS_MAX})
    healthy = HealthyClient(process.bootstrap_servers, HEALTHY_TOPIC).start()
    yield ChildArena(process, healthy)
    healthy.stop(check=process.exit_code is None)


def fuzz(arena: ChildArena, run: Callable[[], None]) -> None:
    """Run the Hypothesis test; the broker child must still be alive afterwards."""
    run()
    assert arena.process.exit_code is None, arena.process.log_text()[-2000:]


@st.composite
def well_formed_request(draw: Any) -> tuple[int, int, int, bytes]:
    key, version = draw(st.sampled_from(SERVED))
    message = draw(message_strategy(request_class(key, version)))
    correlation_id = draw(st.integers(0, 2**31 - 1))
    client_id = draw(st.one_of(st.none(), st.text(max_size=20)))
    frame = encode_request(RequestHeader(key, version, correlation_id, client_id), message)
    expects_answer = not (key == 0 and getattr(message, "acks", None) == 0)
    return key, version, correlation_id if expects_answer else -1, frame


def probe() -> bytes:
    return request_frame(18, 0, {}, correlation_id=PROBE_CORRELATION_ID)


def read_until_probe(client: WireClient) -> tuple[list[bytes], bool]:
    """Frames received before the probe's answer, and whether the probe was answered (False:
    the broker closed the connection first)."""
    frames = []
    while True:
        try:
            frame = client.read_frame()
        except ClosedByPeer:
            return frames, False
        (correlation_id,) = I32.unpack_from(frame)
        if correlation_id == PROBE_CORRELATION_ID:
            return frames, True
        frames.append(frame)


@LIVE_FUZZ
@given(data=st.data())
def well_formed_requests(arena: ChildArena, data: st.DataObject) -> None:
    key, version, correlation_id, frame = data.draw(well_formed_request())
    with WireClient(arena.bootstrap) as client:
        client.send_raw(frame + probe())
        frames, alive = read_until_probe(client)
    if correlation_id == -1:
        # Produce with acks=0: no answer; a failed partition closes the connection (Kafka).
        assert frames == []
    else:
        assert alive, f"api {key} v{version}: the broker closed the connection"
        assert len(frames) == 1
        got, _body = decode_response(frames[0], key, version)
        assert got == correlation_id
    assert arena.errors_logged() == []
    arena.healthy.assert_progress(1)


def test_well_formed_requests_are_answered(arena: ChildArena) -> None:
    fuzz(arena, lambda: well_formed_requests(arena))


@st.composite
def mutated_request(draw: Any) -> bytes:
    _key, _version, _cid, frame = draw(well_formed_request())
    body = bytearray(frame[4:])
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite"]))
        position = draw(st.integers(0, max(len(body) - 1, 0)))
        if operation == "flip" and body:
            body[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "truncate":
            del body[position:]
        elif operation == "insert":
            body[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:
            value = draw(st.sampled_from([b"\xff", b"\x80", b"\x7f\xff\xff\xff", b"\xff" * 6]))
            body[position : position + len(value)] = value
    # The size prefix is recomputed: the frame is whole, so the broker must decide about it.
    return I32.pack(len(body)) + bytes(body)


@LIVE_FUZZ
@given(data=st.data())
def mutated_requests(arena: ChildArena, data: st.DataObject) -> None:
    frame = data.draw(mutated_request())
    with WireClient(arena.bootstrap) as client:
        client.send_raw(frame + probe())
        frames, _alive = read_until_probe(client)
    assert len(frames) <= 1
    arena.healthy.assert_progress(1)


def test_mutated_requests_are_answered_or_closed(arena: ChildArena) -> None:
    # No check of the log here: a null where the spec allows none makes a handler fail (and
    # log) before the connection is closed; see test_bad_frames.py for that known bug.
    fuzz(arena, lambda: mutated_requests(arena))


@LIVE_FUZZ
@given(stream=st.binary(max_size=512), cut=st.integers(1, 64))
def random_streams(arena: ChildArena, stream: bytes, cut: int) -> None:
    with WireClient(arena.bootstrap) as client:
        try:
            for start in range(0, len(stream), cut):
                client.send_raw(stream[start : start + cut])
            client.half_close()
        except ClosedByPeer:
            pass  # a bad size prefix closed it before the stream was sent
        client.wait_closed()
    arena.healthy.assert_progress(1)


def test_random_streams_end_in_a_close(arena: ChildArena) -> None:
    """Garbage in chunks, then end of stream: whatever it claimed, the broker closes."""
    fuzz(arena, lambda: random_streams(arena))
