"""ShareFetch with several members on one partition (issue 16: consumption that did not scale
with consumers), over the wire against the broker:

- an answer carries only the stored batches that hold its acquired records (Kafka 4.4's
  ``ShareFetchUtils.maybeSliceFetchRecords``), not everything the read returned;
- a member whose acknowledgement frees room in the in-flight window acquires in that same
  request, before the parked fetches it wakes (the fetch used to wait for the
  acknowledgement's fsync first, and the parked fetches took the room);
- a parked ShareFetch is answered when another member gives records back by leaving the group,
  closing its share session (Kafka's ``releaseSession``) or losing the connection that opened
  it (Kafka's share-session disconnect listener), not at its max_wait;
- an acknowledgement that frees nothing (inside the window) wakes no parked fetch.

The parked fetches have a long max_wait; the bound on their answers is a hang guard well
under it, not a measurement.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from shoal.broker.handlers import share_fetch
from shoal.embedded import EmbeddedBroker
from shoal.records.header import read_header
from shoal.storage import ReadWouldWait
from tests.coordinator.groups.clients import create_share_queue
from tests.server.wire import WireClient, wait_until
from tests.support.share_wire import (
    ACCEPT,
    CLOSE_SESSION_EPOCH,
    LEAVE_EPOCH,
    RELEASE,
    SHARE_ACKNOWLEDGE,
    SHARE_FETCH,
    SHARE_GROUP_HEARTBEAT,
    acquired_ranges,
    heartbeat_body,
    share_acknowledge_body,
    share_fetch_body,
)

pytestmark = pytest.mark.integration

PARKED_MAX_WAIT_MS = 60_000
"""A parked fetch's max_wait: one that waits it out fails the hang guard first."""
SHORT_MAX_WAIT_MS = 300
"""For a fetch expected to find nothing: how long it stays parked before answering empty."""
ANSWER_WAIT_S = 10.0
"""The hang guard: well under PARKED_MAX_WAIT_MS (and the wire client's socket timeout)."""
BATCH_RECORDS = 5
BATCHES = 4
WINDOW_RECORDS = 10
"""group.share.partition.max.record.locks for these tests: two batches in flight at most."""
RECORD_LIMIT = 1
"""ShareFetch v2's ShareAcquireMode record_limit (0, batch_optimized, is v1's behaviour)."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    data_dir: Path = tmp_path_factory.mktemp("share-wakeups")
    started = EmbeddedBroker(str(data_dir), share_version=1).start()
    shares = started.app.broker.share_groups
    shares.partition_settings = replace(shares.partition_settings, max_record_locks=WINDOW_RECORDS)
    yield started
    started.stop()


def _queue(broker: EmbeddedBroker, partitions: int = 1) -> tuple[str, str]:
    """A topic whose partitions each hold BATCHES stored batches of BATCH_RECORDS records,
    and a share group that reads it from the start."""
    bootstrap = broker.bootstrap_servers
    topic, group = f"wake-{uuid.uuid4().hex[:8]}", f"wake-group-{uuid.uuid4().hex[:8]}"
    create_share_queue(bootstrap, topic, group, partitions=partitions)
    # A long linger: the records wait for the flush, which sends them as one batch.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10_000})
    for partition in range(partitions):
        for batch in range(BATCHES):
            for i in range(BATCH_RECORDS):
                producer.produce(topic, value=b"%d-%d" % (batch, i), partition=partition)
            assert producer.flush(30) == 0  # one stored batch per flush
    return topic, group


class _Member:
    """One share-group member with its own connection and share session."""

    def __init__(self, broker: EmbeddedBroker, topic: str, group: str) -> None:
        self.client = WireClient(broker.bootstrap_servers)
        self.broker, self.topic = broker, topic
        self.group = group
        self.member = f"member-{uuid.uuid4().hex[:16]}"
        self.topic_id = broker.app.broker.topics.get(topic).topic_id  # type: ignore[union-attr]
        self.epoch = 0
        self._pool = ThreadPoolExecutor(1)
        self._heartbeat(0, [topic])

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()

    def _heartbeat(self, epoch: int, topics: list[str] | None) -> None:
        body = heartbeat_body(self.group, self.member, epoch, topics)
        answer = self.client.request(SHARE_GROUP_HEARTBEAT, 1, body)
        assert int(answer.error_code) == 0, answer

    def leave(self) -> None:
        self._heartbeat(LEAVE_EPOCH, None)

    def start_fetch(self, **kwargs: Any) -> Future[Any]:
        """Send a ShareFetch (answered on a worker thread): its partition's answer."""
        values = self.fetch_values(**kwargs)

        def send() -> Any:
            answer = self.client.request(SHARE_FETCH, _version(values), values)
            assert int(answer.error_code) == 0, answer
            if not answer.responses:
                return None
            (partition,) = answer.responses[0].partitions
            assert int(partition.error_code) == 0, partition
            assert int(partition.acknowledge_error_code) == 0, partition
            return partition

        return self._pool.submit(send)

    def fetch_values(
        self,
        *,
        max_records: int,
        max_wait_ms: int = PARKED_MAX_WAIT_MS,
        max_bytes: int = 1 << 20,
        acks: tuple[tuple[int, int, int], ...] = (),
        close: bool = False,
        record_limit: bool = False,
    ) -> dict[str, Any]:
        """The member's next ShareFetch (its session epoch taken): v1, whose acquisition is
        Kafka's batch_optimized; v2 with ShareAcquireMode record_limit if asked."""
        epoch = CLOSE_SESSION_EPOCH if close else self.epoch
        values = share_fetch_body(
            self.group,
            self.member,
            epoch,
            self.topic_id,
            acks=acks,
            max_wait_ms=max_wait_ms,
            max_bytes=max_bytes,
            max_records=max_records,
        )
        if record_limit:
            values |= {"share_acquire_mode": RECORD_LIMIT, "is_renew_ack": False}
        self.epoch += 1
        return values

    def park(self, **kwargs: Any) -> Future[Any]:
        """A ShareFetch that finds nothing to acquire, once the broker has it parked."""
        signals = self.broker.app.broker.signals
        before = signals.waiting(self.topic, 0)
        parked = self.start_fetch(**kwargs)
        wait_until(lambda: signals.waiting(self.topic, 0), lambda n: n > before or parked.done())
        assert not parked.done(), parked.result()
        return parked

    def fetch(self, **kwargs: Any) -> list[tuple[int, int]]:
        return _acquired(self.start_fetch(**kwargs).result(ANSWER_WAIT_S))


def _version(values: dict[str, Any]) -> int:
    """ShareFetch v2 for a request that names its acquire mode, else v1."""
    return 2 if "share_acquire_mode" in values else 1


def _acquired(partition: Any) -> list[tuple[int, int]]:
    if partition is None:
        return []
    return acquired_ranges(partition)


def _batch_offsets(records: bytes) -> list[tuple[int, int]]:
    """(base offset, last offset) of each stored batch in a ShareFetch answer's records."""
    out, position = [], 0
    while position < len(records):
        header = read_header(records, position)
        out.append((header.base_offset, header.last_offset))
        position += header.size
    return out


@pytest.fixture
def queue(broker: EmbeddedBroker) -> Iterator[tuple[_Member, _Member, _Member]]:
    topic, group = _queue(broker)
    members = tuple(_Member(broker, topic, group) for _ in range(3))
    yield members  # type: ignore[misc]
    for member in members:
        member.close()


def test_an_answer_carries_only_the_batches_holding_its_acquired_records(
    queue: tuple[_Member, _Member, _Member],
) -> None:
    a, _, _ = queue
    partition = a.start_fetch(max_records=BATCH_RECORDS + 1, record_limit=True).result(
        ANSWER_WAIT_S
    )
    # Offsets 0-5 are acquired: the first batch and the one holding offset 5; the read held
    # all four batches, and the two after offset 5 stay out of the answer.
    assert _acquired(partition) == [(0, BATCH_RECORDS)]
    assert _batch_offsets(bytes(partition.records)) == [
        (0, BATCH_RECORDS - 1),
        (BATCH_RECORDS, 2 * BATCH_RECORDS - 1),
    ]


def test_the_member_that_frees_the_window_acquires_before_the_fetches_it_wakes(
    queue: tuple[_Member, _Member, _Member],
) -> None:
    a, b, _ = queue
    assert a.fetch(max_records=WINDOW_RECORDS) == [(0, WINDOW_RECORDS - 1)]  # the window is full
    parked = b.park(max_records=WINDOW_RECORDS)
    # a accepts everything it holds and asks for more in the same request: the room it freed
    # is its own to fill first; b, woken by the acknowledgement, finds the window full again.
    got = a.fetch(
        max_records=WINDOW_RECORDS,
        max_wait_ms=SHORT_MAX_WAIT_MS,
        acks=((0, WINDOW_RECORDS - 1, ACCEPT),),
    )
    assert got == [(WINDOW_RECORDS, 2 * WINDOW_RECORDS - 1)]
    a.leave()  # what a holds goes to b, still parked
    assert _acquired(parked.result(ANSWER_WAIT_S)) == [(WINDOW_RECORDS, 2 * WINDOW_RECORDS - 1)]


@pytest.mark.parametrize(
    "how", ["leaves the group", "closes its share session", "loses its connection"]
)
def test_a_parked_fetch_is_answered_when_another_member_gives_records_back(
    queue: tuple[_Member, _Member, _Member], how: str
) -> None:
    a, b, _ = queue
    assert a.fetch(max_records=BATCH_RECORDS * BATCHES) == [(0, WINDOW_RECORDS - 1)]
    assert b.fetch(max_records=BATCH_RECORDS, max_wait_ms=0) == []  # the window is full
    parked = b.park(max_records=BATCH_RECORDS)
    if how == "leaves the group":
        a.leave()
    elif how == "closes its share session":
        assert a.fetch(max_records=BATCH_RECORDS, close=True) == []
    else:  # the socket is cut, nothing sent: Kafka's disconnect listener ends a's session
        a.client.close()
    # a's records are Available again (delivery 2) and b's parked fetch takes some at once.
    assert _acquired(parked.result(ANSWER_WAIT_S)) == [(0, BATCH_RECORDS - 1)]


def test_an_acknowledgement_that_frees_nothing_wakes_no_parked_fetch(
    broker: EmbeddedBroker, queue: tuple[_Member, _Member, _Member]
) -> None:
    a, b, c = queue
    assert a.fetch(max_records=BATCH_RECORDS) == [(0, BATCH_RECORDS - 1)]
    assert b.fetch(max_records=BATCH_RECORDS) == [(BATCH_RECORDS, WINDOW_RECORDS - 1)]
    signals = broker.app.broker.signals
    woken: list[tuple[str, int]] = []
    notify = signals.notify

    def counting(topic: str, partition: int) -> None:
        woken.append((topic, partition))
        notify(topic, partition)

    signals.notify = counting  # type: ignore[method-assign]
    try:
        parked = c.park(max_records=BATCH_RECORDS)
        # b's records sit inside the window (a's are before them): accepting them frees no
        # room, as the start offset stays at 0; b acquires nothing and nothing is woken.
        acks = ((BATCH_RECORDS, WINDOW_RECORDS - 1, ACCEPT),)
        assert b.fetch(max_records=BATCH_RECORDS, max_wait_ms=0, acks=acks) == []
        assert woken == []
        # a's acceptance moves the start past both: room for a (in its own request) and for
        # c, woken once.
        acks = ((0, BATCH_RECORDS - 1, ACCEPT),)
        assert a.fetch(max_records=BATCH_RECORDS, acks=acks) == [(10, 14)]
        assert _acquired(parked.result(ANSWER_WAIT_S)) == [(15, 19)]
        assert len(woken) == 1
    finally:
        signals.notify = notify  # type: ignore[method-assign]


def test_a_fetch_reads_on_chunk_by_chunk_past_records_others_hold(
    queue: tuple[_Member, _Member, _Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A share fetch reads the log a bounded chunk at a time (whole batches, at least one),
    not all of MaxBytes at once; a chunk whose records are all held by others is passed over
    and the next one read, in the same request."""
    monkeypatch.setattr(share_fetch, "SHARE_READ_CHUNK_BYTES", 1)  # one batch per read
    a, b, _ = queue
    assert a.fetch(max_records=BATCH_RECORDS) == [(0, BATCH_RECORDS - 1)]
    partition = b.start_fetch(max_records=2 * BATCH_RECORDS).result(ANSWER_WAIT_S)
    # The first read holds a's batch alone; the second b's; the window (10) stops the third.
    assert _acquired(partition) == [(BATCH_RECORDS, WINDOW_RECORDS - 1)]
    assert _batch_offsets(bytes(partition.records)) == [(BATCH_RECORDS, WINDOW_RECORDS - 1)]
    assert a.fetch(max_records=BATCH_RECORDS, acks=((0, BATCH_RECORDS - 1, ACCEPT),)) == [
        (WINDOW_RECORDS, WINDOW_RECORDS + BATCH_RECORDS - 1)
    ]
    # Acquired over two reads: the answer holds both batches, one after the other.
    acks = ((BATCH_RECORDS, WINDOW_RECORDS - 1, ACCEPT),)
    partition = b.start_fetch(max_records=2 * BATCH_RECORDS, acks=acks).result(ANSWER_WAIT_S)
    assert _acquired(partition) == [(15, 19)]
    assert _batch_offsets(bytes(partition.records)) == [(15, 19)]


def test_a_closed_sessions_own_parked_fetch_does_not_take_back_what_the_close_released(
    broker: EmbeddedBroker, queue: tuple[_Member, _Member, _Member]
) -> None:
    """a's session is closed (ShareAcknowledge with epoch -1, here from another connection)
    while a's own fetch is parked: the close releases a's records and wakes the partition's
    parked fetches, a's among them, which must acquire nothing for a session that no longer
    exists (found in review: it re-acquired them, locked for a whole lock duration)."""
    a, b, _ = queue
    assert a.fetch(max_records=BATCH_RECORDS * BATCHES) == [(0, WINDOW_RECORDS - 1)]
    parked = a.park(max_records=BATCH_RECORDS)
    closer = WireClient(broker.bootstrap_servers)
    try:
        body = share_acknowledge_body(a.group, a.member, CLOSE_SESSION_EPOCH, None)
        answer = closer.request(SHARE_ACKNOWLEDGE, 1, body)
        assert int(answer.error_code) == 0, answer
    finally:
        closer.close()
    assert _acquired(parked.result(ANSWER_WAIT_S)) == []
    # What the close released is the group's: another member takes it at once.
    assert b.fetch(max_records=BATCH_RECORDS, max_wait_ms=0) == [(0, BATCH_RECORDS - 1)]


def _release(member: _Member, first: int, last: int) -> None:
    """A ShareAcknowledge (no fetch) giving ``first``..``last`` back."""
    _acknowledge(member, ((first, last, RELEASE),))


def _acknowledge(member: _Member, acks: tuple[tuple[int, int, int], ...]) -> None:
    """A ShareAcknowledge (no fetch) of ``acks``: (first offset, last offset, type) each."""
    body = share_acknowledge_body(member.group, member.member, member.epoch, member.topic_id, acks)
    answer = member.client.request(SHARE_ACKNOWLEDGE, 1, body)
    member.epoch += 1
    assert int(answer.error_code) == 0, answer


def test_records_released_while_a_fetch_reads_off_the_loop_are_not_missed(
    broker: EmbeddedBroker, queue: tuple[_Member, _Member, _Member]
) -> None:
    """b's fetch reads off the loop (not cached) from offset 5; meanwhile a takes 5-9 again
    (the window is full) and c releases 0-4: that release notifies no parked fetch (b is still
    reading). b's read holds nothing it may acquire, yet 0-4 are Available: it must answer
    with them at once instead of parking until a lock expiry or its max_wait (found in
    review: a lost wake-up)."""
    a, b, c = queue
    plog = broker.app.broker.partition(a.topic, 0)
    assert plog is not None
    assert c.fetch(max_records=BATCH_RECORDS) == [(0, BATCH_RECORDS - 1)]
    assert a.fetch(max_records=BATCH_RECORDS) == [(BATCH_RECORDS, WINDOW_RECORDS - 1)]
    _release(a, BATCH_RECORDS, WINDOW_RECORDS - 1)
    armed, reading, gate = [True], threading.Event(), threading.Event()
    real_read = plog.read

    def held_read(offset: int, max_bytes: int, cached_only: bool = False) -> Any:
        if armed[0] and cached_only:
            raise ReadWouldWait()
        if armed[0]:
            armed[0] = False
            reading.set()
            gate.wait(ANSWER_WAIT_S)
        return real_read(offset, max_bytes)

    plog.read = held_read  # type: ignore[method-assign]
    try:
        parked = b.start_fetch(max_records=BATCH_RECORDS)
        assert reading.wait(ANSWER_WAIT_S)
        assert a.fetch(max_records=BATCH_RECORDS) == [(BATCH_RECORDS, WINDOW_RECORDS - 1)]
        _release(c, 0, BATCH_RECORDS - 1)
        gate.set()
        assert _acquired(parked.result(ANSWER_WAIT_S)) == [(0, BATCH_RECORDS - 1)]
    finally:
        gate.set()
        plog.read = real_read  # type: ignore[method-assign]


def test_a_cancelled_fetch_gives_back_what_it_acquired(
    broker: EmbeddedBroker,
    queue: tuple[_Member, _Member, _Member],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """b opens its share session on its connection and takes 0-4; its next fetch goes on a
    second connection, accepts 0-4 and acquires 5-9 from its first read; while its second
    read is held off the loop, that connection closes, which cancels the request (and does
    not end the session, opened on the first). No consumer will see 5-9: they are Available
    again at once, their delivery count unchanged (they stayed locked until the lock timed
    out, and c got 10-14 instead)."""
    monkeypatch.setattr(share_fetch, "SHARE_READ_CHUNK_BYTES", 1)  # one batch per read
    _, b, c = queue
    app_broker = broker.app.broker
    plog = app_broker.partition(b.topic, 0)
    assert plog is not None
    reading, gate, closed = threading.Event(), threading.Event(), threading.Event()
    real_read, real_closed = plog.read, app_broker.connection_closed

    def held_read(offset: int, max_bytes: int, cached_only: bool = False) -> Any:
        if offset == 2 * BATCH_RECORDS and not reading.is_set():  # b's second read
            if cached_only:
                raise ReadWouldWait()
            reading.set()
            gate.wait(ANSWER_WAIT_S)
        return real_read(offset, max_bytes, cached_only=cached_only)

    def noting_closed(connection_id: str) -> None:
        real_closed(connection_id)  # called once the connection's requests are cancelled
        closed.set()

    monkeypatch.setattr(plog, "read", held_read)
    monkeypatch.setattr(app_broker, "connection_closed", noting_closed)
    assert b.fetch(max_records=BATCH_RECORDS) == [(0, BATCH_RECORDS - 1)]
    second = WireClient(broker.bootstrap_servers)
    try:
        accept = ((0, BATCH_RECORDS - 1, ACCEPT),)
        second.send(SHARE_FETCH, 1, b.fetch_values(max_records=2 * BATCH_RECORDS, acks=accept))
        assert reading.wait(ANSWER_WAIT_S)
        second.close()
        assert closed.wait(ANSWER_WAIT_S)
        partition = c.start_fetch(max_records=BATCH_RECORDS, max_wait_ms=0).result(ANSWER_WAIT_S)
        assert [
            (int(r.first_offset), int(r.last_offset), int(r.delivery_count))
            for r in partition.acquired_records
        ] == [(BATCH_RECORDS, WINDOW_RECORDS - 1, 1)]
    finally:
        gate.set()


def test_a_fetch_reads_no_more_than_its_max_bytes_past_records_others_hold(
    broker: EmbeddedBroker,
    queue: tuple[_Member, _Member, _Member],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a accepts 0-3 and gives 4 back, b holds 5-9: c's fetch reads from 4, with MaxBytes of
    two batches. It reads 0-4 (acquiring 4) and b's 5-9, and stops there, as Kafka reads
    MaxBytes from the fetch offset; it used to read on (MaxBytes counted only the batches it
    kept) through others' records as far as the in-flight window let it."""
    monkeypatch.setattr(share_fetch, "SHARE_READ_CHUNK_BYTES", 1)  # one batch per read
    a, b, c = queue
    plog = broker.app.broker.partition(a.topic, 0)
    assert plog is not None
    assert a.fetch(max_records=BATCH_RECORDS) == [(0, BATCH_RECORDS - 1)]
    assert b.fetch(max_records=BATCH_RECORDS) == [(BATCH_RECORDS, WINDOW_RECORDS - 1)]
    last_of_a = BATCH_RECORDS - 1
    _acknowledge(a, ((0, last_of_a - 1, ACCEPT), (last_of_a, last_of_a, RELEASE)))
    real_read = plog.read
    two_batches = sum(
        read_header(real_read(offset, 1).data, 0).size for offset in (0, BATCH_RECORDS)
    )
    read: list[int] = []

    def counted_read(offset: int, max_bytes: int, cached_only: bool = False) -> Any:
        result = real_read(offset, max_bytes, cached_only=cached_only)
        read.append(len(result.data))
        return result

    monkeypatch.setattr(plog, "read", counted_read)
    got = c.fetch(max_records=2 * BATCH_RECORDS, max_bytes=two_batches, max_wait_ms=0)
    assert got == [(last_of_a, last_of_a)]
    assert sum(read) == two_batches


def test_batch_optimized_acquires_the_rest_of_the_stored_batch_its_limit_falls_in(
    queue: tuple[_Member, _Member, _Member],
) -> None:
    """A v1 ShareFetch (Kafka's batch_optimized acquisition) with MaxRecords 6 acquires 0-9:
    the limit falls inside the stored batch 5-9, whose rest comes too, as Kafka 4.4's
    acquireNewBatchRecords does; the window (10) is then full, so b's fetch gets nothing; a
    v2 record_limit fetch of c takes exactly what it asks once there is room."""
    a, b, c = queue
    assert a.fetch(max_records=BATCH_RECORDS + 1) == [(0, WINDOW_RECORDS - 1)]
    assert b.fetch(max_records=1, max_wait_ms=0) == []
    acks = ((0, WINDOW_RECORDS - 1, ACCEPT),)
    assert a.fetch(max_records=1, max_wait_ms=0, acks=acks) == [
        (WINDOW_RECORDS, WINDOW_RECORDS + BATCH_RECORDS - 1)
    ]
    assert c.fetch(max_records=2, record_limit=True) == [
        (WINDOW_RECORDS + BATCH_RECORDS, WINDOW_RECORDS + BATCH_RECORDS + 1)
    ]


def test_the_sessions_partitions_are_read_in_turn(broker: EmbeddedBroker) -> None:
    """A session on two partitions, each holding BATCHES stored batches: fetches asking for
    one batch's records are served from one partition, then the other (round robin by
    session epoch, as Kafka 4.4's PartitionRotateStrategy); a fixed order served partition 0
    until it ran dry, however long partition 1 waited."""
    topic, group = _queue(broker, partitions=2)
    member = _Member(broker, topic, group)
    try:
        served = []
        for _ in range(4):
            values = member.fetch_values(max_records=BATCH_RECORDS)
            values["topics"][0]["partitions"] = [
                {"partition_index": p, "acknowledgement_batches": []} for p in (0, 1)
            ]
            answer = member.client.request(SHARE_FETCH, 1, values)
            assert int(answer.error_code) == 0, answer
            served.append(
                sorted(
                    int(p.partition_index)
                    for r in answer.responses
                    for p in r.partitions
                    if p.acquired_records
                )
            )
        assert sorted(map(tuple, served)) == [(0,), (0,), (1,), (1,)]
        assert served[0] != served[1] and served[1] != served[2]
    finally:
        member.close()
