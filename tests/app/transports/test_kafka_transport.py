"""The transport suite on the Kafka transport, against shoal's embedded broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shoal import App
from shoal.embedded import EmbeddedBroker
from tests.app.transports.transport_suite import TransportSuite, run, wait_until
from tests.peers.kafka_peer import KafkaPeer

pytestmark = pytest.mark.integration


class TestKafkaTransportOnShoal(TransportSuite):
    @pytest.fixture
    def broker_url(self, shoal_broker_factory: Callable[..., EmbeddedBroker]) -> str:
        # No initial rebalance delay, as the Kafka peer of the suite below runs: the default
        # 3 s only held back every group's first join (each test starts a new group or two).
        broker = shoal_broker_factory(group_initial_rebalance_delay_ms=0)
        return f"kafka://{broker.bootstrap_servers}"


def test_embedded_url_starts_a_broker_in_process_and_talks_kafka_to_it(tmp_path: Path) -> None:
    got: list[str] = []

    async def scenario() -> None:
        app = App(f"embedded://{tmp_path / 'data'}")

        @app.subscriber("greetings", group="g")
        async def greet(text: str) -> None:
            got.append(text)

        async with app:
            await app.publish("greetings", "hi")
            await wait_until(lambda: got == ["hi"], "the greeting")

    run(scenario())
    assert (tmp_path / "data").is_dir()


class TestKafkaTransportOnApacheKafka(TransportSuite):
    """The same suite against the real thing: the framework must not depend on shoal."""

    @pytest.fixture
    def broker_url(self, kafka_peer: KafkaPeer) -> str:
        return f"kafka://{kafka_peer.bootstrap_servers}"
