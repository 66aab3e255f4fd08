"""The Kafka transport's delivery reports: collected on the thread that polls the producer and
handed to the loop in one call per batch; each future settles once, a failed delivery as a
TransportError naming the topic."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import confluent_kafka
import pytest

from shoal.app.transport import TransportError
from shoal.app.transports.kafka import KafkaTransport, _DeliveryReports
from shoal.embedded import EmbeddedBroker

SEND_WAIT_S = 30.0
"""A bound on a hang, not a timing."""


def test_a_batch_of_reports_settles_every_future_from_another_thread() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        reports = _DeliveryReports()
        ok = [loop.create_future() for _ in range(3)]
        failed: asyncio.Future[None] = loop.create_future()

        def poller() -> None:  # what the producer's poll thread does
            for future in ok:
                reports.add(loop, future, "t", None)
            reports.add(loop, failed, "t", "Broker: Message size too large")
            reports.hand_over()
            reports.hand_over()  # nothing left: no second call

        thread = threading.Thread(target=poller)
        thread.start()
        thread.join()
        await asyncio.wait_for(asyncio.gather(*ok), 10)
        with pytest.raises(TransportError, match="delivery to t failed: Broker: Message size"):
            await asyncio.wait_for(failed, 10)

    asyncio.run(scenario())


def test_reports_for_a_closed_loop_are_dropped_not_raised_in_the_poller() -> None:
    loop = asyncio.new_event_loop()
    future: asyncio.Future[None] = loop.create_future()
    loop.close()
    reports = _DeliveryReports()
    reports.add(loop, future, "t", None)
    reports.hand_over()  # the poller thread must survive an app that went away
    assert not future.done()


def test_a_raising_user_callback_does_not_end_the_producers_deliveries(
    shoal_broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stats_cb of the user's config raises inside the producer's poll: the poll thread logs
    it and goes on, so deliveries are still reported (before, the thread ended and every
    later send waited forever)."""
    raised: list[str] = []

    def stats_cb(_stats: str) -> None:
        raised.append("stats")
        raise RuntimeError("a user's callback failed")

    transport = KafkaTransport(
        shoal_broker.bootstrap_servers, **{"statistics.interval.ms": 10, "stats_cb": stats_cb}
    )

    producer_ids: list[int] = []
    # Not captured: pytest keeps each logged record (and its traceback, which holds the
    # producer) until the test ends, which would hide the leak the last assertion looks for.
    monkeypatch.setattr(logging.getLogger("shoal.app.transports.kafka"), "disabled", True)

    async def scenario() -> None:
        await transport.start()
        producer_ids.append(id(transport._producer))
        try:
            for i in range(3):
                # Each send waits for its delivery report, which only the poll thread hands over.
                await asyncio.wait_for(
                    transport.send("raising-callback", b"v%d" % i, None, []), SEND_WAIT_S
                )
                await asyncio.sleep(0.05)
        finally:
            await transport.stop()

    asyncio.run(scenario())
    assert len(raised) >= 2
    # Stopped, the producer is gone (the callback's traceback once kept it alive, reconnecting).
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, confluent_kafka.Producer)]
    assert all(id(o) != producer_ids[0] for o in alive)
