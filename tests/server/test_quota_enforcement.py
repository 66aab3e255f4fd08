"""Client quotas enforced on a live broker: throttle_time_ms in the responses of a client over
its producer_byte_rate, consumer_byte_rate or request_percentage, its connection muted for that
long (KIP-219: its next request is not read before the mute ends) while another client is
served meanwhile, and a real confluent-kafka producer told of its throttle while an unthrottled
one on the same broker is not.

Windows are small (quota.window.num=2, 1 s windows: a young rate counts as spread over one
second), so throttles stay short. Nothing here measures time: mute deadlines and handler starts
are compared on the broker's loop clock, which orders them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

import pytest
from confluent_kafka import Producer

from shoal.broker.broker import Broker, HandlerResult
from shoal.broker.context import RequestContext
from shoal.broker.handlers import HANDLERS
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode, Request
from shoal.records import SimpleRecord, build_batch
from tests.server.wire import WireClient, fetch_values, produce_values, wait_until
from tests.support.broker import create_topic, run_on_loop

pytestmark = pytest.mark.integration

SMALL_WINDOWS: Final = {"quota_window_num": 2, "quota_window_size_seconds": 1}
TIMEOUT_S: Final = 30.0
"""Bounds a client call; measures nothing."""


def set_quota(broker: EmbeddedBroker, entity: dict[str, str | None], **quotas: float) -> None:
    with WireClient(broker.bootstrap_servers, client_id="quota-admin") as admin:
        response = admin.request(
            ApiKey.ALTER_CLIENT_QUOTAS,
            1,
            {
                "entries": [
                    {
                        "entity": [{"entity_type": k, "entity_name": n} for k, n in entity.items()],
                        "ops": [
                            {"key": key, "value": value, "remove": False}
                            for key, value in quotas.items()
                        ],
                    }
                ],
                "validate_only": False,
            },
        )
        assert [e.error_code for e in response.entries] == [ErrorCode.NONE]


def throttle_ms(response: Any) -> int:
    return int(response.throttle_time.total_seconds() * 1000)


def mute_deadlines(broker: EmbeddedBroker) -> list[float]:
    def read() -> list[float]:
        kafka = broker.app.kafka
        assert kafka is not None
        return [c.mute.until for c in kafka._connections]

    return run_on_loop(broker, read)


def test_a_producer_over_its_byte_rate_is_throttled_and_muted(
    shoal_broker_factory: Callable[..., EmbeddedBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = shoal_broker_factory(**SMALL_WINDOWS)
    create_topic(broker, "limited", 1)
    set_quota(broker, {"client-id": "slow"}, producer_byte_rate=1000)

    # When each ApiVersions handler starts, on the broker's loop clock.
    started: dict[str | None, float] = {}
    original = HANDLERS[ApiKey.API_VERSIONS]

    async def recording(broker_: Broker, ctx: RequestContext, request: Request) -> HandlerResult:
        started[ctx.client_id] = asyncio.get_running_loop().time()
        return await original(broker_, ctx, request)

    monkeypatch.setitem(HANDLERS, ApiKey.API_VERSIONS, recording)  # type: ignore[arg-type]

    batch = build_batch([SimpleRecord(value=b"x" * 1500)])
    with (
        WireClient(broker.bootstrap_servers, client_id="slow") as slow,
        WireClient(broker.bootstrap_servers, client_id="other") as other,
    ):
        answer = slow.request(0, 9, _produce(batch))
        assert throttle_ms(answer) > 0
        assert answer.responses[0].partition_responses[0].error_code == ErrorCode.NONE
        (deadline,) = [d for d in mute_deadlines(broker) if d > 0]
        # The muted client asks at once; another client asks too, and is served first.
        correlation = slow.send(18, 3, _api_versions())
        assert other.api_versions().error_code == ErrorCode.NONE
        assert started["other"] < deadline
        reply = slow.receive(18, 3, correlation)
        assert reply.error_code == ErrorCode.NONE
        assert started["slow"] >= deadline, "the muted connection was read before its mute ended"
        # A client without a quota is never throttled.
        free = other.request(0, 9, _produce(batch))
        assert throttle_ms(free) == 0


def test_request_percentage_throttles_every_request(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(**SMALL_WINDOWS)
    # A share of a thread no request can stay under: every request earns the most Kafka
    # gives for request time, one window.
    set_quota(broker, {"user": None}, request_percentage=1e-9)
    with WireClient(broker.bootstrap_servers, client_id="busy") as busy:
        assert throttle_ms(busy.api_versions()) == 1000
        assert throttle_ms(busy.metadata(None)) == 1000


def test_a_fetch_over_the_consumer_byte_rate_answers_empty_and_throttled(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(**SMALL_WINDOWS)
    create_topic(broker, "fetched", 1)
    with WireClient(broker.bootstrap_servers, client_id="writer") as writer:
        writer.produce("fetched", 0, build_batch([SimpleRecord(value=b"y" * 5000)]))
    set_quota(broker, {"client-id": "reader"}, consumer_byte_rate=1000)
    with WireClient(broker.bootstrap_servers, client_id="reader") as reader:
        response = reader.request(1, 11, fetch_values("fetched", 0))
        assert throttle_ms(response) > 0
        assert response.responses == ()  # the records are not sent, nor counted
    with WireClient(broker.bootstrap_servers, client_id="writer") as free:
        response = free.request(1, 11, fetch_values("fetched", 0))
        assert throttle_ms(response) == 0
        assert len(response.responses[0].partitions[0].records) > 5000


def test_confluent_producer_sees_throttle_and_an_unthrottled_one_does_not(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(**SMALL_WINDOWS)
    create_topic(broker, "throttled", 1)
    set_quota(broker, {"client-id": "limited"}, producer_byte_rate=50_000)
    throttles: dict[str, list[int]] = {"limited": [], "free": []}
    for client_id in ("limited", "free"):
        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "client.id": client_id,
                "linger.ms": 5,
                "throttle_cb": lambda event, c=client_id: throttles[c].append(
                    int(event.throttle_time * 1000)
                ),
            }
        )
        for _ in range(200):
            producer.produce("throttled", b"z" * 1000)
            producer.poll(0)
        assert producer.flush(TIMEOUT_S) == 0
        producer.poll(0)
    assert throttles["limited"], "the limited producer was never told it was throttled"
    assert all(ms > 0 for ms in throttles["limited"])
    assert throttles["free"] == []


def _produce(batch: bytes) -> dict[str, Any]:
    return produce_values("limited", 0, batch)


def _api_versions() -> dict[str, Any]:
    return {"client_software_name": "shoal-wire-test", "client_software_version": "1"}


def held_connections(broker: EmbeddedBroker) -> int:
    def read() -> int:
        kafka = broker.app.kafka
        assert kafka is not None and kafka._accept_throttle is not None
        return kafka._accept_throttle.held

    return run_on_loop(broker, read)


def test_a_connection_over_its_ips_creation_rate_is_closed_unserved(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(**SMALL_WINDOWS)
    set_quota(broker, {"ip": "127.0.0.1"}, connection_creation_rate=1)
    with WireClient(broker.bootstrap_servers, client_id="first") as first:
        assert first.api_versions().error_code == ErrorCode.NONE
        with WireClient(broker.bootstrap_servers, client_id="second") as second:
            second.send(18, 3, _api_versions())
            assert second.wait_closed() == b"", "the connection over the rate was served"
        # The connection within the rate is unaffected.
        assert first.api_versions().error_code == ErrorCode.NONE


def test_over_the_broker_wide_creation_rate_accepting_waits(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(**SMALL_WINDOWS, max_connection_creation_rate=1)
    with WireClient(broker.bootstrap_servers, client_id="first") as first:
        assert first.api_versions().error_code == ErrorCode.NONE
        with WireClient(broker.bootstrap_servers, client_id="second") as second:
            correlation = second.send(18, 3, _api_versions())
            assert wait_until(lambda: held_connections(broker), lambda n: n == 1) == 1
            # Held, not refused: it is served once the acceptor's wait is over.
            assert second.receive(18, 3, correlation).error_code == ErrorCode.NONE
            assert held_connections(broker) == 0


def test_a_consumers_fetch_is_capped_to_what_its_quota_allows(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = shoal_broker_factory(**SMALL_WINDOWS)
    create_topic(broker, "capped", 1)
    with WireClient(broker.bootstrap_servers, client_id="writer") as writer:
        for _ in range(3):
            writer.produce("capped", 0, build_batch([SimpleRecord(value=b"v" * 700)]))
    # One window of 1 s at 1000 B/s: a Fetch may return about 1000 bytes, and always at least
    # one batch, as Kafka caps fetch.max.bytes by the quota.
    set_quota(broker, {"client-id": "reader"}, consumer_byte_rate=1000)
    with WireClient(broker.bootstrap_servers, client_id="reader") as reader:
        response = reader.request(1, 11, fetch_values("capped", 0))
        assert throttle_ms(response) == 0
        records = response.responses[0].partitions[0].records
        assert 700 < len(records) < 2 * 700  # one batch of the three


def test_acks_0_over_the_byte_rate_mutes_though_nothing_is_answered(
    shoal_broker_factory: Callable[..., EmbeddedBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = shoal_broker_factory(**SMALL_WINDOWS)
    create_topic(broker, "limited", 1)
    set_quota(broker, {"client-id": "silent"}, producer_byte_rate=1000)
    started: list[float] = []
    original = HANDLERS[ApiKey.API_VERSIONS]

    async def recording(broker_: Broker, ctx: RequestContext, request: Request) -> HandlerResult:
        started.append(asyncio.get_running_loop().time())
        return await original(broker_, ctx, request)

    monkeypatch.setitem(HANDLERS, ApiKey.API_VERSIONS, recording)  # type: ignore[arg-type]
    batch = build_batch([SimpleRecord(value=b"x" * 1500)])
    with WireClient(broker.bootstrap_servers, client_id="silent") as silent:
        # Both requests in one write, so the broker reads them together, before the first
        # has earned its throttle: the second must still wait for the mute (Kafka reads one
        # request at a time).
        _, produce = silent.encode(0, 9, produce_values("limited", 0, batch, acks=0))
        correlation, versions = silent.encode(18, 3, _api_versions())
        silent.send_raw(produce + versions)
        reply = silent.receive(18, 3, correlation)
        assert reply.error_code == ErrorCode.NONE
        (deadline,) = [d for d in mute_deadlines(broker) if d > 0]
        assert started[0] >= deadline
