"""KIP-932 share group members in the simulation (a mixin of :class:`Simulation`).

Three members of one share group read the simulation's topic as a queue: they join, heartbeat
and leave (ShareGroupHeartbeat v1, the member id made by the client), open, use and close
share sessions with ShareFetch v1 (session epoch 0 opens one, each later request carries the
epoch after the last, -1 closes it), acquire records, and acknowledge what they hold (ACCEPT,
RELEASE or REJECT, chosen by the seed; a transaction marker's offset as GAP, as Kafka's
clients do), piggy-backed on a ShareFetch or with ShareAcknowledge, while the clock runs
locks (``share.record.lock.duration.ms``) and member sessions out, and the broker crashes,
loses power and restarts (membership, sessions and locks are memory; the share-partitions'
state is the side journal written before an acknowledgement is answered).

What a share consumer relies on (KIP-932), checked on every answer and after every step:

* **one holder at a time**: a record is not delivered while another member (or the same one)
  still holds it, i.e. before its lock can have expired (acquired no earlier than the request
  that got it was sent, locked for the lock duration), its member can have left (its session
  deadline runs from a heartbeat sent), or its holder gave it back (acknowledged it, closed
  its session, left);
* **an acknowledgement answered NONE is durable**: a record whose ACCEPT or REJECT was
  answered NONE is never delivered again, across crashes and power losses, and the broker's
  share-partition never holds it as Available or Acquired;
* **delivery counts**: each delivery of a record in one broker incarnation counts more than
  the last, never more than ``share.delivery.count.limit``, and after a restart more than the
  count a durable state held (acquisitions themselves are not written, so a count may undercount
  after a crash, as in Kafka);
* **no record skipped**: the share-partition's start never passes a record at or after the
  first one delivered that no member acknowledged as done (ACCEPT, REJECT, GAP) nor got for
  the last time allowed, unless retention or DeleteRecords deleted it (KIP-932: no
  unacknowledged record lost across a restart);
* **what is delivered was produced**: every acquired offset lies in a stored batch of the
  answer, whose bytes are the acknowledged batch at that offset (else the log's own).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from shoal.coordinator.share_partition import RecordState
from shoal.protocol import ApiKey, ErrorCode
from shoal.records import read_header
from tests.simulation.model import Violation, stamped_body
from tests.simulation.node import InFlight, group_config
from tests.simulation.topic import PARTITIONS, TOPIC

if TYPE_CHECKING:
    from tests.simulation.sim import Simulation

    _Base = Simulation
else:
    _Base = object

SHARE_GROUP: Final = "sq"
HEARTBEAT: Final = (int(ApiKey.SHARE_GROUP_HEARTBEAT), 1)
SHARE_FETCH: Final = (int(ApiKey.SHARE_FETCH), 1)
SHARE_ACKNOWLEDGE: Final = (int(ApiKey.SHARE_ACKNOWLEDGE), 1)
GAP, ACCEPT, RELEASE, REJECT = 0, 1, 2, 3
ACK_NAMES: Final = {GAP: "GAP", ACCEPT: "ACCEPT", RELEASE: "RELEASE", REJECT: "REJECT"}
ACK_TYPES: Final = (ACCEPT, ACCEPT, ACCEPT, RELEASE, REJECT)
"""The seed's choice of an acknowledgement (ACCEPT most often, as a queue's consumers do)."""
OPEN_EPOCH, CLOSE_EPOCH = 0, -1

_GROUP_CONFIG: Final = group_config()
LOCK_MS: Final = _GROUP_CONFIG.share_record_lock_duration_ms
SESSION_TIMEOUT_MS: Final = _GROUP_CONFIG.share_session_timeout_ms
DELIVERY_LIMIT: Final = _GROUP_CONFIG.share_delivery_count_limit

HEARTBEAT_RATIO: Final = 0.1
LEAVE_RATIO: Final = 0.1
"""Of the heartbeats of a member in the group, those that leave it."""
ACKNOWLEDGE_RATIO: Final = 0.25
"""Of the requests of a member with a session, ShareAcknowledge (the rest ShareFetch)."""
CLOSE_RATIO: Final = 0.05
"""Of the requests of a member with a session, those that close it (epoch -1)."""
MAX_WAITS_MS: Final = (0, 0, 0, 500)
"""A fetch with nothing to acquire answers at once, or parks until the clock moves."""

SESSION_LOST: Final = frozenset(
    {ErrorCode.SHARE_SESSION_NOT_FOUND, ErrorCode.INVALID_SHARE_SESSION_EPOCH}
)
"""Answers after which the member opens a new share session (nothing of the request done)."""
ACK_REFUSED: Final = frozenset(
    {
        ErrorCode.INVALID_RECORD_STATE,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
    }
)
"""Acknowledgement answers that change nothing the client may count on."""
FETCH_FAILED: Final = frozenset({ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.NOT_LEADER_OR_FOLLOWER})
HEARTBEAT_FENCED: Final = frozenset({ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_MEMBER_EPOCH})

Record = tuple[int, int]
"""(partition, offset) of the simulation's topic."""


@dataclass
class Held:
    """A record a member's client holds: its delivery count, and when the request that
    acquired it was sent (the lock runs from no earlier than that)."""

    count: int
    sent_ms: float


@dataclass
class ShareClient:
    name: str
    member_id: str
    member_epoch: int = 0
    session_epoch: int = OPEN_EPOCH
    """The share session epoch the next request carries (0: open a new session)."""
    heartbeat_sent_ms: float | None = None
    """When the last heartbeat the broker answered NONE was sent: the member is in the group
    until at least the session timeout after it."""
    held: dict[Record, Held] = field(default_factory=dict)
    flight: InFlight | None = None


@dataclass
class ShareModel:
    clients: list[ShareClient] = field(default_factory=list)
    settled: dict[Record, int] = field(default_factory=dict)
    """Records whose ACCEPT or REJECT (or GAP) was answered NONE, with the type."""
    seen: dict[Record, int] = field(default_factory=dict)
    """The highest delivery count seen in this broker incarnation."""
    floor: dict[Record, int] = field(default_factory=dict)
    """A delivery count a durable state held: every later delivery counts more."""
    markers: dict[int, set[int]] = field(default_factory=dict)
    """Per partition, offsets acquired that hold a transaction marker (acknowledged as GAP)."""
    low: dict[int, int] = field(default_factory=dict)
    """Per partition, the lowest offset ever delivered: the share-partition covered it then,
    and its start moves past a record only once the record is done."""
    maybe_done: set[Record] = field(default_factory=set)
    """Records a member sent an ACCEPT, REJECT or GAP for (whatever the answer), or was
    delivered for the last time allowed: the broker may hold them as done."""
    log_start: dict[int, int] = field(default_factory=dict)
    """Per partition, the highest log start seen (retention and DeleteRecords skip records)."""
    most: dict[Record, int] = field(default_factory=dict)
    """The highest delivery count ever seen (across restarts)."""
    unanswered: int = 0
    """ShareFetches sent whose answer no client saw (in flight, or lost in a crash): each may
    have acquired a record once more, unseen, and its lock expired past the limit archives it."""
    deliveries: int = 0
    acknowledged: dict[str, int] = field(default_factory=dict)
    """Acknowledgements answered NONE, per type."""


class ShareSteps(_Base):
    share: ShareModel

    def _share_clients(self) -> ShareModel:
        ids = (uuid.UUID(int=self.rng.getrandbits(128), version=4) for _ in range(3))
        return ShareModel([ShareClient(f"q{i}", str(u)) for i, u in enumerate(ids)])

    def _share(self) -> None:
        client = self.rng.choice(self.share.clients)
        if client.flight is not None:
            # Its request waits on a worker thread (a state file read or write, a read of
            # the log) or for the clock: the machine's workers take a job meanwhile.
            self._note(f"{client.name}: still waiting for its request")
            self._run_job()
            return
        if client.member_epoch == 0 or self.rng.random() < HEARTBEAT_RATIO:
            self._share_heartbeat(client)
        elif client.session_epoch == OPEN_EPOCH:
            self._share_fetch(client, OPEN_EPOCH, {})
        else:
            closing = self.rng.random() < CLOSE_RATIO
            epoch = CLOSE_EPOCH if closing else client.session_epoch
            acks = self._choose_acks(client)
            if closing:
                client.held.clear()  # the broker releases what a closed session held
            if closing or (acks and self.rng.random() < ACKNOWLEDGE_RATIO):
                self._share_acknowledge(client, epoch, acks)
            else:
                self._share_fetch(client, epoch, acks)

    # -- heartbeats -------------------------------------------------------------------------

    def _share_heartbeat(self, client: ShareClient) -> None:
        leaving = client.member_epoch > 0 and self.rng.random() < LEAVE_RATIO
        epoch = -1 if leaving else client.member_epoch
        values = {
            "group_id": SHARE_GROUP,
            "member_id": client.member_id,
            "member_epoch": epoch,
            "rack_id": None,
            "subscribed_topic_names": [TOPIC] if epoch == 0 else None,
        }
        if leaving:
            # A leaving consumer stops reading: the broker releases what it holds.
            client.held.clear()
            client.member_epoch, client.session_epoch = 0, OPEN_EPOCH
            client.heartbeat_sent_ms = None
        self._note(f"{client.name}: ShareGroupHeartbeat epoch {epoch}")
        sent = self.clock.monotonic_ms()
        client.flight = self._send(
            HEARTBEAT, values, lambda f: self._on_share_heartbeat(client, epoch, sent, f)
        )

    def _on_share_heartbeat(
        self, client: ShareClient, epoch: int, sent: float, flight: InFlight
    ) -> None:
        client.flight = None
        answer = self.node.answer(flight)
        error = ErrorCode(answer.error_code)
        self._note(f"{client.name}: ShareGroupHeartbeat -> {error.name} {answer.member_epoch}")
        if epoch == -1:
            return  # it left whatever the answer
        if error is ErrorCode.NONE:
            client.member_epoch = int(answer.member_epoch)
            client.heartbeat_sent_ms = sent
        elif error in HEARTBEAT_FENCED:
            client.member_epoch = 0  # out of the group: its records were released
            client.heartbeat_sent_ms = None
        else:
            raise Violation(
                f"{client.name}: ShareGroupHeartbeat -> {error.name}: {answer.error_message}"
            )

    # -- fetches and acknowledgements -------------------------------------------------------

    def _choose_acks(self, client: ShareClient) -> dict[Record, int]:
        """Some of what the member holds, each with the type the seed picks; the member gives
        them up (the broker has them from this request on)."""
        if not client.held:
            return {}
        held = sorted(client.held)
        chosen = self.rng.sample(held, self.rng.randint(1, len(held)))
        acks = {r: self._ack_type(r) for r in sorted(chosen)}
        self.share.maybe_done.update(r for r, kind in acks.items() if kind != RELEASE)
        for record in acks:
            del client.held[record]
        return acks

    def _ack_type(self, record: Record) -> int:
        partition, offset = record
        return GAP if self._is_marker(partition, offset) else self.rng.choice(ACK_TYPES)

    def _is_marker(self, partition: int, offset: int) -> bool:
        return offset in self.share.markers.get(partition, set())

    def _ack_topics(self, acks: dict[Record, int], fetching: bool) -> list[dict[str, Any]]:
        partitions = range(PARTITIONS) if fetching else sorted({p for p, _ in acks})
        if not partitions:
            return []
        parts = []
        for partition in partitions:
            batches = [
                {"first_offset": o, "last_offset": o, "acknowledge_types": [kind]}
                for (p, o), kind in sorted(acks.items())
                if p == partition
            ]
            parts.append({"partition_index": partition, "acknowledgement_batches": batches})
        return [{"topic_id": self._share_topic_id(), "partitions": parts}]

    def _share_topic_id(self) -> uuid.UUID:
        assert self.node.broker is not None
        topic = self.node.broker.topics.get(TOPIC)
        assert topic is not None
        return topic.topic_id

    def _share_fetch(self, client: ShareClient, epoch: int, acks: dict[Record, int]) -> None:
        max_records = self.rng.randint(1, 10)
        max_wait = self.rng.choice(MAX_WAITS_MS)
        values = {
            "group_id": SHARE_GROUP,
            "member_id": client.member_id,
            "share_session_epoch": epoch,
            "max_wait": max_wait,
            "min_bytes": 1,
            "max_bytes": 1 << 20,
            "max_records": max_records,
            "batch_size": max_records,
            # Epoch 0 names the partitions the session reads; later ones carry acks only.
            "topics": self._ack_topics(acks, fetching=epoch == OPEN_EPOCH),
            "forgotten_topics_data": [],
        }
        self._note(
            f"{client.name}: ShareFetch epoch {epoch} max_records={max_records} "
            f"max_wait={max_wait} acks {self._acks_text(acks)}"
        )
        self._share_send(client, SHARE_FETCH, values, epoch, acks)

    def _share_acknowledge(self, client: ShareClient, epoch: int, acks: dict[Record, int]) -> None:
        values = {
            "group_id": SHARE_GROUP,
            "member_id": client.member_id,
            "share_session_epoch": epoch,
            "topics": self._ack_topics(acks, fetching=False),
        }
        self._note(f"{client.name}: ShareAcknowledge epoch {epoch} acks {self._acks_text(acks)}")
        self._share_send(client, SHARE_ACKNOWLEDGE, values, epoch, acks)

    @staticmethod
    def _acks_text(acks: dict[Record, int]) -> str:
        return str([(p, o, ACK_NAMES[k]) for (p, o), k in sorted(acks.items())])

    def _share_send(
        self,
        client: ShareClient,
        api: tuple[int, int],
        values: dict[str, Any],
        epoch: int,
        acks: dict[Record, int],
    ) -> None:
        # The counts the client saw before sending: a state written after these acks were
        # applied holds at least these (see _on_share_answer).
        # (Also what a delivery in the answer must count more than: an answer may come after
        # a later acquisition's, whose count is higher.)
        seen = dict(self.share.seen)
        sent = self.clock.monotonic_ms()
        if api == SHARE_FETCH:
            self.share.unanswered += 1
        client.flight = self._send(
            api, values, lambda f: self._on_share_answer(client, epoch, acks, seen, sent, f)
        )

    def _on_share_answer(
        self,
        client: ShareClient,
        epoch: int,
        acks: dict[Record, int],
        seen: dict[Record, int],
        sent: float,
        flight: InFlight,
    ) -> None:
        client.flight = None
        if flight.api_key == SHARE_FETCH[0]:
            self.share.unanswered -= 1
        answer = self.node.answer(flight)
        error = ErrorCode(answer.error_code)
        if error in SESSION_LOST:
            self._note(f"{client.name}: -> {error.name}, opens a new session")
            client.session_epoch = OPEN_EPOCH
            return
        if error is not ErrorCode.NONE:
            raise Violation(f"{client.name}: share request -> {error.name}: {answer.error_message}")
        client.session_epoch = OPEN_EPOCH if epoch == CLOSE_EPOCH else max(epoch, 0) + 1
        outcome = []
        for topic in answer.responses:
            if topic.topic_id != self._share_topic_id():
                raise Violation(f"{client.name}: an answer for topic id {topic.topic_id}")
            for part in topic.partitions:
                partition = int(part.partition_index)
                if flight.api_key == SHARE_ACKNOWLEDGE[0]:  # its ErrorCode is the ack's
                    ack_error, fetch_error = ErrorCode(part.error_code), ErrorCode.NONE
                else:
                    ack_error = ErrorCode(part.acknowledge_error_code)
                    fetch_error = ErrorCode(part.error_code)
                self._share_acked(client, partition, acks, seen, ack_error)
                if fetch_error is not ErrorCode.NONE and fetch_error not in FETCH_FAILED:
                    raise Violation(f"{client.name}: ShareFetch p{partition} -> {fetch_error.name}")
                fetched = flight.api_key == SHARE_FETCH[0]
                got = self._share_delivered(client, partition, part, sent, seen) if fetched else []
                outcome.append(f"p{partition} ack {ack_error.name} got {got}")
        self._note(f"{client.name}: -> {'; '.join(outcome) or 'nothing'}")

    def _share_acked(
        self,
        client: ShareClient,
        partition: int,
        acks: dict[Record, int],
        seen: dict[Record, int],
        error: ErrorCode,
    ) -> None:
        mine = {r: k for r, k in acks.items() if r[0] == partition}
        if not mine:
            return
        if error in ACK_REFUSED:
            return
        if error is not ErrorCode.NONE:
            raise Violation(f"{client.name}: acknowledgement p{partition} -> {error.name}")
        for record, kind in mine.items():
            name = ACK_NAMES[kind]
            self.share.acknowledged[name] = self.share.acknowledged.get(name, 0) + 1
            if kind != RELEASE:
                self.share.settled[record] = kind
        # The state that holds these acknowledgements is durable, and with it every delivery
        # count the broker had when it was written: at least what the client saw before.
        for record, count in seen.items():
            if record[0] == partition and count > self.share.floor.get(record, 0):
                self.share.floor[record] = count

    def _share_delivered(
        self, client: ShareClient, partition: int, part: Any, sent: float, before: dict[Record, int]
    ) -> list[tuple[int, int]]:
        """Check and take what the answer acquired: (offset, delivery count) of each."""
        ranges = [
            (int(r.first_offset), int(r.last_offset), int(r.delivery_count))
            for r in part.acquired_records
        ]
        if not ranges:
            return []
        batches = self._share_batches(client, partition, part.records or b"")
        now = self.clock.monotonic_ms()
        got = []
        for first, last, count in ranges:
            for offset in range(first, last + 1):
                record = (partition, offset)
                kind = self._covering(batches, offset)
                if kind is None:
                    raise Violation(
                        f"{client.name}: acquired {TOPIC}-{partition} offset {offset}, which no "
                        f"batch of the answer holds"
                    )
                if kind == "marker":
                    self.share.markers.setdefault(partition, set()).add(offset)
                if not self._check_delivery(client, record, count, now, before):
                    continue  # acquired before a later delivery: its lock ran out already
                client.held[record] = Held(count, sent)
                if count >= DELIVERY_LIMIT:
                    self.share.maybe_done.add(record)  # archived once given back or expired
                self.share.low[partition] = min(self.share.low.get(partition, offset), offset)
                self.share.seen[record] = count
                self.share.most[record] = max(self.share.most.get(record, 0), count)
                self.share.deliveries += 1
                got.append((offset, count))
        return got

    def _share_batches(
        self, client: ShareClient, partition: int, data: bytes
    ) -> list[tuple[int, int, bool]]:
        """The answer's stored batches (base, last, is a marker), each checked against what was
        produced: the acknowledged batch at its offset, else the batch the log holds there."""
        model = self.models[partition]
        view = memoryview(data)
        out = []
        position = 0
        while position < len(view):
            header = read_header(view[position:])
            body = stamped_body(bytes(view[position : position + header.size]))
            expected = model.acked.get(header.base_offset)
            if expected is None:
                expected = self._stored_body(partition, header.base_offset)
            if expected is not None and body != expected:
                raise Violation(
                    f"{client.name}: ShareFetch p{partition} batch at {header.base_offset} is "
                    f"not the one produced there"
                )
            out.append((header.base_offset, header.last_offset, header.is_control))
            position += header.size
        return out

    def _stored_body(self, partition: int, offset: int) -> bytes | None:
        plog = self._plog(partition)
        if offset < plog.log_start_offset or offset >= plog.log_end_offset:
            return None
        data = plog.read(offset, 1).data
        if not data:
            return None
        header = read_header(data)
        if header.base_offset != offset:
            return None
        return stamped_body(bytes(data[: header.size]))

    @staticmethod
    def _covering(batches: list[tuple[int, int, bool]], offset: int) -> str | None:
        for base, last, marker in batches:
            if base <= offset <= last:
                return "marker" if marker else "data"
        return None

    def _check_delivery(
        self, client: ShareClient, record: Record, count: int, now: float, before: dict[Record, int]
    ) -> bool:
        """Check a delivery; False when a later acquisition of the record was seen first."""
        partition, offset = record
        where = f"{TOPIC}-{partition} offset {offset}"
        settled = self.share.settled.get(record)
        if settled is not None:
            raise Violation(
                f"{client.name}: {where} delivered again (count {count}) after its "
                f"{ACK_NAMES[settled]} was answered NONE"
            )
        if not 1 <= count <= DELIVERY_LIMIT:
            raise Violation(
                f"{client.name}: {where} delivered with count {count} (limit {DELIVERY_LIMIT})"
            )
        last = max(before.get(record, 0), self.share.floor.get(record, 0))
        if count <= last:
            raise Violation(
                f"{client.name}: {where} delivered with count {count}, not above {last} "
                f"(seen since the restart, or durable)"
            )
        for other in self.share.clients:
            held = other.held.get(record)
            if held is None:
                continue
            if held.count > count:
                return False
            until = held.sent_ms + LOCK_MS
            if other.heartbeat_sent_ms is not None:
                until = min(until, other.heartbeat_sent_ms + SESSION_TIMEOUT_MS)
            else:
                until = held.sent_ms  # not known to be in the group: may have been released
            if now < until:
                raise Violation(
                    f"{client.name}: {where} delivered (count {count}) while {other.name} holds "
                    f"it (count {held.count}) until at least t+{until:.0f}ms"
                )
            del other.held[record]  # its lock ran out: the client's acknowledgement would fail
        return True

    # -- restarts and invariants ------------------------------------------------------------

    def _share_restarted(self) -> None:
        """Membership, share sessions and locks die with the broker; delivery counts may go
        back to the last durable state's."""
        for client in self.share.clients:
            client.flight = None
            client.member_epoch, client.session_epoch = 0, OPEN_EPOCH
            client.heartbeat_sent_ms = None
            client.held.clear()
        self.share.seen.clear()

    def _maybe_done(self, record: Record) -> bool:
        """Whether the broker may hold ``record`` as done without a client having been told:
        acknowledged as done, or possibly delivered for the last time allowed by fetches whose
        answers nobody saw."""
        if record in self.share.maybe_done:
            return True
        count = max(self.share.most.get(record, 0), self.share.floor.get(record, 0))
        return count + self.share.unanswered >= DELIVERY_LIMIT

    def _check_share(self) -> None:
        """The broker's share-partitions, as they are now: no settled record back in flight, no
        count below a durable one."""
        assert self.node.broker is not None
        partitions = self.node.broker.share_groups.partitions
        for partition in range(PARTITIONS):
            log_start = max(
                self.share.log_start.get(partition, 0), self._plog(partition).log_start_offset
            )
            self.share.log_start[partition] = log_start
            sp = partitions.get((SHARE_GROUP, TOPIC, partition))
            if sp is None:
                continue
            low = self.share.low.get(partition)
            if low is not None:
                for offset in range(max(low, log_start), sp.start_offset):
                    if not self._maybe_done((partition, offset)):
                        raise Violation(
                            f"share group {SHARE_GROUP}: {TOPIC}-{partition} offset {offset}, "
                            f"delivered from {low} on and never acknowledged, is skipped (the "
                            f"share-partition starts at {sp.start_offset})"
                        )
            for record, kind in self.share.settled.items():
                if record[0] != partition:
                    continue
                state = sp.records.get(record[1])
                if state is not None and state.state in (
                    RecordState.AVAILABLE,
                    RecordState.ACQUIRED,
                ):
                    raise Violation(
                        f"share group {SHARE_GROUP}: {TOPIC}-{partition} offset {record[1]} is "
                        f"{state.state.name} after its {ACK_NAMES[kind]} was answered NONE"
                    )
                if state is None and record[1] >= sp.end_offset:
                    raise Violation(
                        f"share group {SHARE_GROUP}: {TOPIC}-{partition} offset {record[1]} "
                        f"is past the share-partition's end {sp.end_offset} after its "
                        f"{ACK_NAMES[kind]} was answered NONE (it would be delivered again)"
                    )
            for record, floor in self.share.floor.items():
                state = sp.records.get(record[1]) if record[0] == partition else None
                if state is not None and state.state is not RecordState.ARCHIVED:
                    if state.delivery_count < floor and state.state is not RecordState.ACKNOWLEDGED:
                        raise Violation(
                            f"share group {SHARE_GROUP}: {TOPIC}-{partition} offset {record[1]} "
                            f"counts {state.delivery_count} deliveries, below the durable {floor}"
                        )
