"""Transactions are not built yet: a transactional producer must fail at once, with an error
that says why, instead of retrying until its timeout; the broker logs one line about it.

librdkafka retries every FindCoordinator error for a transactional id except
TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which is fatal for it (and for the Java client, which
treats every error there but COORDINATOR_NOT_AVAILABLE as fatal).
"""

from __future__ import annotations

import logging
from typing import Final

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from shoal.broker.context import RequestContext
from shoal.broker.unsupported import LOG_INTERVAL_MS, UnsupportedFeatures
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from shoal.testing.clock import FakeClock
from tests.peers.kafka_peer import kafka_tool
from tests.server.wire import WireClient

INIT_TIMEOUT_S: Final = 30.0
"""What the client would wait at most; the test only checks that it gave up for a fatal,
non-retriable error (which it does without waiting)."""
CTX: Final = RequestContext(client_id="orders", client_host="10.0.0.7", client_port=40000)


@pytest.mark.integration
def test_init_transactions_fails_at_once_with_a_fatal_error(
    shoal_broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shoal.broker.unsupported")
    errors: list[KafkaError] = []
    for attempt in range(3):
        producer = Producer(
            {
                "bootstrap.servers": shoal_broker.bootstrap_servers,
                "transactional.id": f"orders-tx-{attempt}",
            }
        )
        with pytest.raises(KafkaException) as info:
            producer.init_transactions(INIT_TIMEOUT_S)
        errors.append(info.value.args[0])
    for error in errors:
        assert error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert error.fatal()
        assert not error.retriable()
        assert "does not support Kafka transactions" in error.str()
        assert "unset transactional.id" in error.str()
    # One line for the three producers (rate-limited), naming the feature.
    lines = [r.getMessage() for r in caplog.records if r.name == "shoal.broker.unsupported"]
    assert len(lines) == 1
    assert "transactions" in lines[0]


@pytest.mark.integration
def test_the_java_client_stops_at_once(shoal_broker: EmbeddedBroker) -> None:
    """kafka-producer-perf-test calls initTransactions() first; the Java client makes the error
    fatal (it shows its own text for the code, not the broker's message)."""
    result = kafka_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        "java-tx",
        "--num-records",
        "10",
        "--record-size",
        "10",
        "--throughput",
        "-1",
        "--command-property",
        f"bootstrap.servers={shoal_broker.bootstrap_servers}",
        "--transactional-id",
        "java-tx",
        "--transaction-duration-ms",
        "100",
    )
    assert result.returncode != 0
    assert "TransactionalIdAuthorizationException" in result.stderr


@pytest.mark.integration
@pytest.mark.parametrize("version", [1, 3, 4, 6])  # v0 has no key type: groups only
def test_find_coordinator_for_a_transactional_id(
    shoal_broker: EmbeddedBroker, version: int
) -> None:
    values = (
        {"key_type": 1, "coordinator_keys": ["a", "b"]}
        if version >= 4
        else {"key_type": 1, "key": "a"}
    )
    with WireClient(shoal_broker.bootstrap_servers) as client:
        answer = client.request(ApiKey.FIND_COORDINATOR, version, values)
    if version >= 4:
        assert [c.error_code for c in answer.coordinators] == [
            ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        ] * 2
        assert "transactions" in answer.coordinators[0].error_message
    else:
        assert answer.error_code == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert "transactions" in answer.error_message


def test_unsupported_features_are_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="shoal.broker.unsupported")
    clock = FakeClock()
    features = UnsupportedFeatures(clock)
    for _ in range(5):
        features.refused("transactions", CTX, "Unset transactional.id.")
    features.refused("share groups", CTX, "Use a consumer group.")
    clock.advance(LOG_INTERVAL_MS)
    features.refused("transactions", CTX, "Unset transactional.id.")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert "'orders' at 10.0.0.7:40000 asked for transactions" in lines[0]
    assert "share groups" in lines[1]
    assert "4 more such requests refused" in lines[2]
