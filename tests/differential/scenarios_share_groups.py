"""Differential scenarios of KIP-932 share groups, with confluent-kafka's ShareConsumer and
the wire for the admin APIs (issue 16, slice Q):

- ``share_delivery``: a RELEASE comes back with delivery count 2, a REJECT is archived (never
  delivered again), and the group's start offset moves past what is done; then
  (``share_offsets_admin``) Describe/Alter/DeleteShareGroupOffsets of a group that does not
  exist (AlterShareGroupOffsets creates it, empty), then of that group;
- ``share_isolation``: ``share.isolation.level=read_committed`` delivers committed records
  only, stops at the last stable offset until the open transaction commits, and never
  delivers an aborted record; read_uncommitted delivers past the open transaction (an aborted
  record reaches neither group's handler: librdkafka's share consumer drops it too); a bad
  value is refused;
- ``share_marker_offsets`` (over the wire, one stored batch a read): a read that holds only a
  transaction's commit marker acquires the marker's offset, a GAP acknowledgement of it is
  accepted, and the record after it comes next.

- ``share_disconnect``: a member's connection is cut while it holds a record; Kafka releases
  the record at once (another member acquires it, delivery count 2, inside a 60 s lock).
- ``share_acquire_mode`` (over the wire): a v1 ShareFetch acquires whole stored batches (Kafka's
  default batch_optimized mode: MaxRecords is soft by a batch), a v2 one asking record_limit
  exactly MaxRecords.
- ``share_start_offset`` (over the wire): DescribeShareGroupOffsets after each acknowledgement
  that moves the start: Kafka 4.4 answers the start offset it persisted with that
  acknowledgement, before moving it (one behind shoal's, which persists the moved start).

Records are keyed; results are what each consumer saw, as (key, delivery count), sorted (the
two brokers may split deliveries over polls differently).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Final

import confluent_kafka as ck
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from tests.differential.scenarios import TIMEOUT_S, Result, create_topic, error_name, unique
from tests.server.wire import WireClient
from tests.support.share_wire import (
    ACCEPT,
    CLOSE_SESSION_EPOCH,
    GAP,
    SHARE_FETCH,
    SHARE_GROUP_HEARTBEAT,
    acquired_ranges,
    heartbeat_body,
    share_fetch_body,
)

POLL_S: Final = 0.3
QUIET_POLLS: Final = 3
"""Polls that must bring nothing once the expected records are in: what is not delivered
is not, rather than late (a bound in polls, not a measured time)."""
DESCRIBE_OFFSETS, ALTER_OFFSETS, DELETE_OFFSETS = 90, 91, 92

Seen = list[tuple[str, int]]


def _set_configs(bootstrap: str, group: str, configs: dict[str, str]) -> str | None:
    """IncrementalAlterConfigs on the GROUP resource: None, or the error and its message."""
    resource = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            for name, value in configs.items()
        ],
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)
    except ck.KafkaException as exc:
        return f"{error_name(exc)}: {exc.args[0].str()}"
    return None


def _consumer(bootstrap: str, group: str, topic: str) -> Any:
    consumer = ck.ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
        }
    )
    consumer.subscribe([topic])
    return consumer


def _consume(
    consumer: Any,
    until: Callable[[Seen], bool],
    outcome: Callable[[str, int], Any] = lambda _key, _count: ck.AcknowledgeType.ACCEPT,
) -> Seen:
    """Poll (acknowledging each record as ``outcome`` says) until ``until`` holds, then
    :data:`QUIET_POLLS` more; every (key, delivery count) seen."""
    seen: Seen = []
    deadline = time.monotonic() + TIMEOUT_S
    quiet = 0
    while quiet < QUIET_POLLS and time.monotonic() < deadline:
        messages = consumer.poll(POLL_S)
        for message in messages:
            assert message.error() is None, message.error()
            key, count = (message.key() or b"").decode(), message.delivery_count()
            seen.append((key, count))
            consumer.acknowledge(message, outcome(key, count))
        if messages:
            consumer.commit_sync()
        if until(seen):
            quiet += 1
    return seen


def _produce(bootstrap: str, topic: str, keys: Iterable[str]) -> None:
    producer = ck.Producer({"bootstrap.servers": bootstrap})
    for key in keys:
        producer.produce(topic, key=key.encode(), value=key.encode())
    assert producer.flush(TIMEOUT_S) == 0


def _start_offsets(client: WireClient, group: str, topic: str) -> list[Any]:
    answer = client.request(
        DESCRIBE_OFFSETS,
        0,
        {"groups": [{"group_id": group, "topics": [{"topic_name": topic, "partitions": [0]}]}]},
    )
    described = answer.groups[0]
    return [
        int(described.error_code),
        [
            (int(p.partition_index), int(p.start_offset), int(p.error_code))
            for t in described.topics
            for p in t.partitions
        ],
    ]


def share_delivery(bootstrap: str) -> Result:
    topic, group = create_topic(bootstrap), unique("share-delivery")
    earliest = {"share.auto.offset.reset": "earliest"}
    out: Result = {"earliest": _set_configs(bootstrap, group, earliest)}
    _produce(bootstrap, topic, ["k0", "k1", "k2"])

    def outcome(key: str, count: int) -> Any:
        if key == "k1" and count == 1:
            return ck.AcknowledgeType.RELEASE
        if key == "k2":
            return ck.AcknowledgeType.REJECT
        return ck.AcknowledgeType.ACCEPT

    consumer = _consumer(bootstrap, group, topic)
    try:
        out["first"] = sorted(_consume(consumer, lambda seen: ("k1", 2) in seen, outcome))
        _produce(bootstrap, topic, ["k3"])
        out["after_reject"] = sorted(_consume(consumer, lambda seen: ("k3", 1) in seen))
    finally:
        consumer.close()
    with WireClient(bootstrap) as client:
        error, offsets = _start_offsets(client, group, topic)
    # Past the rejected record. Kafka 4.4 answers DescribeShareGroupOffsets from its share
    # coordinator's last written state (ReadShareGroupStateSummary), and SharePartition writes
    # an acknowledgement's state as WriteShareGroupState(startOffset as it was before, the
    # acknowledged records as ACKNOWLEDGED/ARCHIVED state batches), moving its start offset
    # in memory only once that write completes (maybeUpdateCachedStateAndOffsets): the start
    # it persisted lags the last acknowledgement that moved it until its next write (any
    # acknowledgement or lock expiry); the coordinator's snapshots (one per
    # share.coordinator.snapshot.update.records.per.snapshot updates) keep that value. shoal
    # writes the moved start with the acknowledgement, so it answers the start offset KIP-932
    # defines, the one Kafka itself loads after a restart (it moves the start past the
    # persisted ACKNOWLEDGED batches on load): 4 here where Kafka says 3. Not matched: it
    # would mean persisting a start offset shoal knows is stale. Either is past the REJECT.
    out["start_past_reject"] = [error, [(p, start >= 3, e) for p, start, e in offsets]]
    out["offsets_admin"] = share_offsets_admin(bootstrap)
    return out


def share_isolation(bootstrap: str) -> Result:
    topic = create_topic(bootstrap)
    committed, uncommitted = unique("share-rc"), unique("share-ru")
    out: Result = {
        "bad_value": _set_configs(bootstrap, committed, {"share.isolation.level": "serializable"}),
        "set_committed": _set_configs(
            bootstrap,
            committed,
            {"share.auto.offset.reset": "earliest", "share.isolation.level": "read_committed"},
        ),
        "set_uncommitted": _set_configs(
            bootstrap, uncommitted, {"share.auto.offset.reset": "earliest"}
        ),
    }
    # Both consumers join first, together: a share consumer's first assignment takes a
    # heartbeat interval on Kafka (5 s), which they then wait out once, not twice.
    reader = _consumer(bootstrap, committed, topic)
    everything = _consumer(bootstrap, uncommitted, topic)
    _produce(bootstrap, topic, ["a"])
    txn = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": unique("share-txn")})
    txn.init_transactions(TIMEOUT_S)
    txn.begin_transaction()
    for key in ("b", "c"):
        txn.produce(topic, key=key.encode(), value=key.encode())
    txn.commit_transaction(TIMEOUT_S)
    txn.begin_transaction()
    txn.produce(topic, key=b"d", value=b"d")
    txn.abort_transaction(TIMEOUT_S)
    _produce(bootstrap, topic, ["e"])
    txn.begin_transaction()
    txn.produce(topic, key=b"f", value=b"f")
    assert txn.flush(TIMEOUT_S) == 0  # written, not committed: the last stable offset stays
    _produce(bootstrap, topic, ["g"])

    try:
        stable = {"a", "b", "c", "e"}
        out["committed_open_txn"] = sorted(
            _consume(reader, lambda seen: stable <= {k for k, _ in seen})
        )
        txn.commit_transaction(TIMEOUT_S)
        out["committed_after_commit"] = sorted(
            _consume(reader, lambda seen: {"f", "g"} <= {k for k, _ in seen})
        )
        out["uncommitted"] = sorted(
            _consume(everything, lambda seen: set("abcefg") <= {k for k, _ in seen})
        )
    finally:
        reader.close()
        everything.close()
    return out


RETRIABLE: Final = frozenset({3, 14, 15, 16})
"""UNKNOWN_TOPIC_OR_PARTITION (a topic created a moment ago that Kafka's group coordinator
does not see yet), COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
(Kafka's share coordinator starting): a client retries these, and so does the scenario."""


def _until_settled(send: Callable[[], Any], codes: Callable[[Any], list[int]]) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        answer = send()
        if not RETRIABLE & set(codes(answer)) or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def share_offsets_admin(bootstrap: str) -> Result:
    """An admin sets the start offset of a group that does not exist (which creates it, empty),
    describes it, deletes it and describes it again. Run by :func:`share_delivery`, once a
    share group has fetched: Kafka starts its share coordinator then, and answers
    NOT_COORDINATOR to these APIs before."""
    topic, group = create_topic(bootstrap), unique("share-admin")
    out: Result = {}
    start = {"topic_name": topic, "partitions": [{"partition_index": 0, "start_offset": 0}]}
    with WireClient(bootstrap) as client:
        out["describe_unknown"] = _start_offsets(client, group, topic)
        altered = _until_settled(
            lambda: client.request(ALTER_OFFSETS, 0, {"group_id": group, "topics": [start]}),
            lambda a: (
                [int(a.error_code)] + [int(p.error_code) for r in a.responses for p in r.partitions]
            ),
        )
        out["alter_unknown"] = [
            int(altered.error_code),
            [int(p.error_code) for r in altered.responses for p in r.partitions],
        ]
        out["describe_altered"] = _start_offsets(client, group, topic)
        deleted = client.request(
            DELETE_OFFSETS, 0, {"group_id": group, "topics": [{"topic_name": topic}]}
        )
        out["delete"] = [int(deleted.error_code), [int(r.error_code) for r in deleted.responses]]
        out["describe_deleted"] = _start_offsets(client, group, topic)
    return out


FIND_COORDINATOR = 10
RECORD_LIMIT = 1
"""ShareFetch v2's ShareAcquireMode record_limit (0 is batch_optimized, all that v1 knows)."""
MARKER_FETCH_WAIT_MS: Final = 500
"""A ShareFetch's max_wait in :func:`share_marker_offsets`: short, so that the scenario's loop
heartbeats often while Kafka assigns the partition."""


class _WireShareMember:
    """A share group member over the wire, on one single-partition topic: ShareFetches of one
    stored batch each (max_bytes 1), to see what each read acquires."""

    def __init__(self, client: WireClient, group: str, topic: str) -> None:
        self.client, self.group, self.topic = client, group, topic
        self.member = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        self.member_epoch = 0
        self.session_epoch = 0
        (described,) = client.metadata([topic], auto_create=False).topics
        self.topic_id = described.topic_id

    def join(self) -> None:
        """FindCoordinator (Kafka loads the group's coordinator on it, and answers
        NOT_COORDINATOR to heartbeats before), then heartbeats until the member is in."""
        _until_settled(
            lambda: self.client.request(
                FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": [self.group]}
            ),
            lambda a: [int(c.error_code) for c in a.coordinators],
        )
        _until_settled(self.heartbeat, lambda a: [int(a.error_code)])

    def heartbeat(self) -> Any:
        body = heartbeat_body(self.group, self.member, self.member_epoch, [self.topic])
        answer = self.client.request(SHARE_GROUP_HEARTBEAT, 1, body)
        if int(answer.error_code) == 0:
            self.member_epoch = int(answer.member_epoch)
        return answer

    def fetch(
        self, acks: list[tuple[int, int, int]], max_records: int = 100, record_limit: bool = False
    ) -> tuple[int, list[tuple[int, int]]]:
        """One ShareFetch carrying ``acks`` (first, last, type): the partition's acknowledge
        error code and the ranges it acquired. v1 (Kafka's batch_optimized acquisition), or v2
        asking ShareAcquireMode record_limit."""
        body = share_fetch_body(
            self.group,
            self.member,
            self.session_epoch,
            self.topic_id,
            acks=acks,
            max_wait_ms=MARKER_FETCH_WAIT_MS,
            max_bytes=1,
            max_records=max_records,
            batch_size=100,
        )
        if record_limit:
            body |= {"share_acquire_mode": RECORD_LIMIT, "is_renew_ack": False}
        answer = self.client.request(SHARE_FETCH, 2 if record_limit else 1, body)
        assert int(answer.error_code) == 0, answer
        self.session_epoch += 1
        parts = [p for r in answer.responses for p in r.partitions]
        acquired = [offsets for p in parts for offsets in acquired_ranges(p)]
        ack_error = max((int(p.acknowledge_error_code) for p in parts), default=0)
        return ack_error, acquired

    def next_acquired(self, acks: list[tuple[int, int, int]], **fetch: Any) -> list[Any]:
        """Fetch (``acks`` on the first request only), heartbeating, until something is
        acquired: [acknowledge error code, acquired ranges]."""
        deadline = time.monotonic() + TIMEOUT_S
        ack_error, acquired = self.fetch(acks, **fetch)
        while not acquired and time.monotonic() < deadline:
            self.heartbeat()
            _, acquired = self.fetch([], **fetch)
        return [ack_error, acquired]


def share_marker_offsets(bootstrap: str) -> Result:
    """A share fetch whose read holds only a transaction's commit marker acquires the marker's
    offset (Kafka's SharePartition.acquire takes the whole fetched range); acknowledged as GAP
    (as the share consumers do), it is done, and the record after it comes next."""
    topic, group = create_topic(bootstrap), unique("share-marker")
    out: Result = {
        "earliest": _set_configs(bootstrap, group, {"share.auto.offset.reset": "earliest"})
    }
    txn = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": unique("share-txn")})
    txn.init_transactions(TIMEOUT_S)
    txn.begin_transaction()
    for key in ("a", "b", "c"):
        txn.produce(topic, key=key.encode(), value=key.encode())
    txn.commit_transaction(TIMEOUT_S)  # records 0-2 (one batch), the commit marker at 3
    _produce(bootstrap, topic, ["d"])  # offset 4
    with WireClient(bootstrap) as client:
        member = _WireShareMember(client, group, topic)
        member.join()
        out["data"] = member.next_acquired([])
        out["marker"] = member.next_acquired([(0, 2, ACCEPT)])
        out["after_marker"] = member.next_acquired([(3, 3, GAP)])
        out["last_ack"] = member.fetch([(4, 4, ACCEPT)])[0]
    return out


CLOSE_LOCK_MS: Final = 60_000
"""Kafka 4.4's largest share.record.lock.duration.ms: in :func:`share_session_close` the
records come back at once only if closing the session released them."""


def share_session_close(bootstrap: str) -> Result:
    """A member closes its share session (ShareFetch epoch -1) holding records it never
    acknowledged: they are Available again at once (Kafka's releaseSession), not after the
    acquisition lock times out; another member acquires them, delivered a second time."""
    topic, group = create_topic(bootstrap), unique("share-close")
    out: Result = {
        "configs": _set_configs(
            bootstrap,
            group,
            {
                "share.auto.offset.reset": "earliest",
                "share.record.lock.duration.ms": str(CLOSE_LOCK_MS),
            },
        )
    }
    _produce(bootstrap, topic, ["held"])
    with WireClient(bootstrap) as first_client, WireClient(bootstrap) as second_client:
        holder = _WireShareMember(first_client, group, topic)
        holder.join()
        out["held"] = holder.next_acquired([])
        # No acknowledgement, nothing fetched.
        close = share_fetch_body(
            group,
            holder.member,
            CLOSE_SESSION_EPOCH,
            None,
            max_wait_ms=0,
            max_bytes=1,
            max_records=100,
        )
        closed = first_client.request(SHARE_FETCH, 1, close)
        out["close"] = int(closed.error_code)
        other = _WireShareMember(second_client, group, topic)
        other.join()
        out["other"] = other.next_acquired([])
    return out


def share_disconnect(bootstrap: str) -> Result:
    """A member's connection is cut while it holds a record it never acknowledged (no session
    close, no leave): Kafka 4.4's share-session cache hears of the disconnect and releases the
    record at once, so another member acquires it well inside the 60 s lock (delivered a
    second time); the cut member is still in the group meanwhile (its heartbeat session has
    not expired)."""
    topic, group = create_topic(bootstrap), unique("share-cut")
    out: Result = {
        "configs": _set_configs(
            bootstrap,
            group,
            {
                "share.auto.offset.reset": "earliest",
                "share.record.lock.duration.ms": str(CLOSE_LOCK_MS),
            },
        )
    }
    _produce(bootstrap, topic, ["held"])
    with WireClient(bootstrap) as second_client:
        with WireClient(bootstrap) as first_client:
            holder = _WireShareMember(first_client, group, topic)
            holder.join()
            out["held"] = holder.next_acquired([])
        # first_client's socket is closed here, nothing more sent on it.
        other = _WireShareMember(second_client, group, topic)
        other.join()
        out["other"] = other.next_acquired([])
    return out


def share_start_offset(bootstrap: str) -> Result:
    """The start offset DescribeShareGroupOffsets gives after each acknowledgement that moves
    it (records 0, 1, 2 in batches of their own, accepted in turn): Kafka 4.4's lags one
    acknowledgement behind shoal's (see share_delivery's comment and accepted_differences.toml);
    the records acquired and the acknowledge errors are compared."""
    topic, group = create_topic(bootstrap), unique("share-start")
    out: Result = {
        "earliest": _set_configs(bootstrap, group, {"share.auto.offset.reset": "earliest"})
    }
    for key in ("a", "b", "c"):
        _produce(bootstrap, topic, [key])  # a stored batch each: one acquired per fetch
    with WireClient(bootstrap) as client:
        member = _WireShareMember(client, group, topic)
        member.join()
        out["first"] = member.next_acquired([])
        out["second"] = member.next_acquired([(0, 0, ACCEPT)])
        out["start_after_first_ack"] = _start_between(client, group, topic, 0, 1)
        out["third"] = member.next_acquired([(1, 1, ACCEPT)])
        out["start_after_second_ack"] = _start_between(client, group, topic, 1, 2)
    return out


def share_acquire_mode(bootstrap: str) -> Result:
    """Two stored batches of 5 records: a v1 ShareFetch asking for 2 records acquires the whole
    first batch (Kafka's default batch_optimized acquisition: a limit inside a stored batch
    takes the rest of it); once it is accepted, a v2 ShareFetch in record_limit mode asking
    for 2 gets exactly 2."""
    topic, group = create_topic(bootstrap), unique("share-acquire-mode")
    out: Result = {
        "earliest": _set_configs(bootstrap, group, {"share.auto.offset.reset": "earliest"})
    }
    _produce(bootstrap, topic, "abcde")  # one stored batch per call
    _produce(bootstrap, topic, "fghij")
    with WireClient(bootstrap) as client:
        member = _WireShareMember(client, group, topic)
        member.join()
        out["batch_optimized"] = member.next_acquired([], max_records=2)
        out["record_limit"] = member.next_acquired(
            [(0, 4, ACCEPT)], max_records=2, record_limit=True
        )
    return out


def _start_between(client: WireClient, group: str, topic: str, kafka: int, shoal: int) -> Any:
    """Describe's answer with the start offset replaced by whether it is Kafka 4.4's value
    (the start written before the last acknowledgement) or shoal's (after it): observed
    exactly so on both brokers (Kafka 0 then 1, shoal 1 then 2), compared as one flag."""
    error, offsets = _start_offsets(client, group, topic)
    return [error, [(p, start in (kafka, shoal), e) for p, start, e in offsets]]


SCENARIOS: dict[str, Callable[[str], Result]] = {
    "share_start_offset": share_start_offset,
    "share_acquire_mode": share_acquire_mode,
    "share_delivery": share_delivery,
    "share_isolation": share_isolation,
    "share_marker_offsets": share_marker_offsets,
    "share_session_close": share_session_close,
    "share_disconnect": share_disconnect,
}


LOCK_MS: Final = 15_000
"""Kafka 4.4's smallest share.record.lock.duration.ms (group.share.min.record.lock.duration.ms):
this scenario lasts at least that long on each broker."""


def share_lock_timeout(bootstrap: str) -> Result:
    """A consumer acquires a record and neither acknowledges it nor leaves; another consumer of
    the group gets it once the lock times out, with delivery count 2, and meanwhile gets a
    later record at once."""
    topic, group = create_topic(bootstrap), unique("share-lock")
    out: Result = {
        "configs": _set_configs(
            bootstrap,
            group,
            {"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": str(LOCK_MS)},
        )
    }
    _produce(bootstrap, topic, ["held"])
    holder = _consumer(bootstrap, group, topic)
    other = _consumer(bootstrap, group, topic)
    try:
        held: Seen = []
        deadline = time.monotonic() + TIMEOUT_S
        while not held and time.monotonic() < deadline:
            held = [((m.key() or b"").decode(), m.delivery_count()) for m in holder.poll(POLL_S)]
        out["holder"] = held  # never acknowledged; the holder polls no more (explicit mode)
        _produce(bootstrap, topic, ["later"])
        out["other_before_timeout"] = sorted(_consume(other, lambda seen: ("later", 1) in seen))
        out["other_after_timeout"] = sorted(_consume(other, lambda seen: ("held", 2) in seen))
    finally:
        other.close()
        holder.close()
    return out
