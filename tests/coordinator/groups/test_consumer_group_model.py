"""A model test of KIP-848 reconciliation (shoal.coordinator.consumer_group).

Hypothesis drives a group with simulated clients on a fake clock: members join, heartbeat
(a well-behaved client reports what it owns: its last answer's assignment, minus nothing),
leave, stop heartbeating until their session times out, change their subscription, and
topics gain partitions. After every step:

- no partition is owned (assigned or awaiting revocation) by two members, on the broker, and
  no two *clients* believe they own the same partition (a client owns what its last answer
  gave it);
- member epochs never go down for a member, and the group epoch never goes down;

and once the members stop changing and keep heartbeating, every partition of a subscribed
topic is owned by a member subscribed to it, and every member is at the assignment epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shoal.coordinator.consumer_group import (
    Assignment,
    ConsumerGroup,
    ConsumerGroupError,
    ConsumerGroupSettings,
    ConsumerHeartbeat,
    MemberState,
)
from shoal.protocol.errors import ErrorCode
from shoal.testing.clock import FakeClock

SESSION_MS = 1000
TOPICS = ("a", "b", "c")
SUBSCRIPTIONS = st.sets(st.sampled_from(TOPICS), min_size=1).map(lambda s: tuple(sorted(s)))


@dataclass
class Client:
    member_id: str
    epoch: int = 0
    owned: Assignment = field(default_factory=dict)
    subscription: tuple[str, ...] = ()
    joined: bool = False


def _tps(a: Assignment) -> set[tuple[str, int]]:
    return {(t, p) for t, ps in a.items() for p in ps}


class Reconciliation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.topics = {"a": 3, "b": 2, "c": 4}
        self.group = ConsumerGroup(
            "g", self.clock, ConsumerGroupSettings(session_timeout_ms=SESSION_MS)
        )
        self.clients: dict[str, Client] = {}
        self.next_id = 0
        self.epochs: dict[str, int] = {}
        self.group_epoch = 0

    # -- the client's side --------------------------------------------------------------

    def _send(self, client: Client, *, full: bool = False) -> None:
        request = ConsumerHeartbeat(
            member_id=client.member_id,
            member_epoch=client.epoch,
            rebalance_timeout_ms=5000 if full or client.epoch == 0 else -1,
            subscribed_topic_names=client.subscription if full or client.epoch == 0 else None,
            owned=dict(client.owned),
        )
        try:
            answer = self.group.heartbeat(request, self.topics)
        except ConsumerGroupError as exc:
            # A fenced client drops everything and joins again with epoch 0.
            assert exc.error in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_MEMBER_EPOCH)
            client.epoch, client.owned = 0, {}
            return
        client.joined = True
        client.epoch = answer.member_epoch
        if answer.assignment is not None:
            client.owned = dict(answer.assignment)

    @rule(subscription=SUBSCRIPTIONS)
    def join(self, subscription: tuple[str, ...]) -> None:
        self.next_id += 1
        client = Client(f"m{self.next_id}", subscription=subscription)
        self.clients[client.member_id] = client
        self._send(client)

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        client = self.clients[data.draw(st.sampled_from(sorted(self.clients)))]
        self._send(client)

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        client = self.clients.pop(data.draw(st.sampled_from(sorted(self.clients))))
        if client.member_id in self.group.members:
            self.group.leave(client.member_id, None, -1)

    @precondition(lambda self: self.clients)
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        """The client dies silently: its session runs out while the others heartbeat."""
        crashed = self.clients.pop(data.draw(st.sampled_from(sorted(self.clients))))
        for _ in range(3):
            self.clock.advance(SESSION_MS // 2)
            for client in self.clients.values():
                self._send(client)
            self.group.expire()
        assert crashed.member_id not in self.group.members

    @precondition(lambda self: self.clients)
    @rule(data=st.data(), subscription=SUBSCRIPTIONS)
    def resubscribe(self, data: st.DataObject, subscription: tuple[str, ...]) -> None:
        client = self.clients[data.draw(st.sampled_from(sorted(self.clients)))]
        client.subscription = subscription
        self._send(client, full=True)

    @rule(topic=st.sampled_from(TOPICS))
    def add_partition(self, topic: str) -> None:
        self.topics = {**self.topics, topic: self.topics[topic] + 1}

    @rule(ms=st.integers(0, SESSION_MS // 3))
    def time_passes(self, ms: int) -> None:
        self.clock.advance(ms)
        self.group.expire()

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def one_owner_per_partition(self) -> None:
        seen: dict[tuple[str, int], str] = {}
        for member in self.group.members.values():
            for tp in _tps(member.assigned) | _tps(member.pending_revocation):
                assert tp not in seen, f"{tp}: {seen[tp]} and {member.member_id}"
                seen[tp] = member.member_id
        believed: dict[tuple[str, int], str] = {}
        # A client fenced on the broker (its session ran out) still believes in its partitions
        # until its next heartbeat tells it otherwise, as in Kafka: only members count.
        for client in self.clients.values():
            if client.member_id not in self.group.members:
                continue
            for tp in _tps(client.owned):
                assert tp not in believed, f"clients {believed[tp]} and {client.member_id}: {tp}"
                believed[tp] = client.member_id

    @invariant()
    def epochs_only_go_up(self) -> None:
        assert self.group.group_epoch >= self.group_epoch
        self.group_epoch = self.group.group_epoch
        for member_id, member in self.group.members.items():
            if member.member_epoch >= 0:
                assert member.member_epoch >= self.epochs.get(member_id, 0)
                self.epochs[member_id] = member.member_epoch
        for member_id in list(self.epochs):
            if member_id not in self.group.members:
                del self.epochs[member_id]

    def teardown(self) -> None:
        # Members stop changing: a few rounds of heartbeats reconcile everyone.
        for _ in range(6):
            for client in self.clients.values():
                self._send(client)
        live = [c for c in self.clients.values() if c.member_id in self.group.members]
        if not live:
            return
        for client in live:
            member = self.group.members[client.member_id]
            assert member.state is MemberState.STABLE
            assert member.member_epoch == self.group.assignment_epoch
            assert client.owned == member.assigned
        owned = {tp: c.member_id for c in live for tp in _tps(c.owned)}
        for client in live:
            for topic in client.subscription:
                for p in range(self.topics[topic]):
                    owner = owned.get((topic, p))
                    assert owner is not None, f"{topic}-{p} unowned"
                    assert topic in self.clients[owner].subscription


TestReconciliation = Reconciliation.TestCase
TestReconciliation.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
