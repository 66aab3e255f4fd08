"""The work-queue delivery ledger that RabbitMQ, Redis Streams and NATS JetStream consumers
share: per-topic numbering, and a commit that settles exactly the deliveries below it."""

from __future__ import annotations

import pytest

from shoal.app.transports.ledger import DeliveryLedger


def test_deliveries_are_numbered_per_topic_from_zero() -> None:
    ledger: DeliveryLedger[str] = DeliveryLedger(["a", "b"])
    numbers = [ledger.hand_out("a", "a0"), ledger.hand_out("b", "b0"), ledger.hand_out("a", "a1")]
    assert numbers == [0, 0, 1]
    assert ledger.assignment() == [("a", 0), ("b", 0)]
    assert ledger.pending() == ["a0", "a1", "b0"]


def test_a_commit_settles_every_delivery_below_it_oldest_first_and_only_those() -> None:
    ledger: DeliveryLedger[str] = DeliveryLedger(["t"])
    for n in range(5):
        ledger.hand_out("t", f"d{n}")
    with ledger.settle(("t", 0), 3) as done:
        assert done == ["d0", "d1", "d2"]
    assert ledger.pending("t") == ["d3", "d4"]
    with ledger.settle(("t", 0), 3) as done:
        assert done == []  # already settled: nothing twice
    with ledger.settle(("t", 0), 5) as done:
        assert done == ["d3", "d4"]
    assert ledger.pending() == []


def test_a_failed_acknowledgement_leaves_the_deliveries_pending() -> None:
    ledger: DeliveryLedger[str] = DeliveryLedger(["t"])
    ledger.hand_out("t", "d0")
    ledger.hand_out("t", "d1")
    with pytest.raises(ConnectionError), ledger.settle(("t", 0), 2):
        raise ConnectionError("the ack did not reach the server")
    assert ledger.pending("t") == ["d0", "d1"]  # handed back on close, not lost


@pytest.mark.parametrize("tp", [("other", 0), ("t", 1)])
def test_committing_what_the_consumer_does_not_consume_is_refused(tp: tuple[str, int]) -> None:
    ledger: DeliveryLedger[str] = DeliveryLedger(["t"])
    ledger.hand_out("t", "d0")
    with pytest.raises(ValueError, match="is not consumed by this consumer"):
        with ledger.settle(tp, 1):
            pass
    assert ledger.pending() == ["d0"]


def test_forgetting_drops_what_was_handed_back_but_keeps_the_numbering() -> None:
    ledger: DeliveryLedger[str] = DeliveryLedger(["a", "b"])
    ledger.hand_out("a", "a0")
    ledger.hand_out("b", "b0")
    ledger.forget("a")
    assert ledger.pending() == ["b0"]
    ledger.forget()
    assert ledger.pending() == []
    assert ledger.hand_out("a", "a1") == 1  # numbers never repeat within a consumer
