"""The Kafka transport's producer settings: shoal's defaults, what a URL's query overrides,
and what it cannot (the framework's delivery guarantees)."""

from __future__ import annotations

from shoal.app.app import _transport_for
from shoal.app.transports.kafka import KafkaTransport


def test_a_urls_linger_reaches_the_producer() -> None:
    # It used to be forced to 5 ms after the URL's settings: ?linger.ms=0 did nothing.
    transport, _ = _transport_for("kafka://127.0.0.1:9092?linger.ms=0")
    assert isinstance(transport, KafkaTransport)
    assert transport.producer_config()["linger.ms"] == "0"


def test_defaults_latency_friendly_and_guarantees_not_overridable() -> None:
    config = KafkaTransport(
        "127.0.0.1:9092", **{"acks": "1", "enable.idempotence": "false"}
    ).producer_config()
    assert config["linger.ms"] == 5
    assert config["socket.nagle.disable"] is True
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True
