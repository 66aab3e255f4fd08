"""``shoal dlq`` against a real broker, on dead letters written by a real failing App."""

from __future__ import annotations

import asyncio
import json

import pytest

from shoal.app import App, Retry
from shoal.embedded import EmbeddedBroker
from tests.cli.support import Cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WAIT_ROUNDS_MAX = 300
"""Rounds of 0.2 s waiting for the App's dead letters: a generous bound, not a timing."""


class PaymentDeclined(Exception):
    pass


ORDERS = [
    ("k0", 10),  # fine
    ("k1", -1),  # ValueError
    ("k2", 0),  # PaymentDeclined
    ("k3", -5),  # ValueError
    ("k4", 7),  # fine
]
FAILING = {"k1", "k2", "k3"}


async def _fill_dlq(bootstrap: str) -> None:
    """Run an App whose handler fails for some orders until they are all dead-lettered."""
    app = App(f"kafka://{bootstrap}", name="billing")

    @app.subscriber(
        "orders", group="billing", retry=Retry(max_attempts=2, base_delay_ms=0, max_delay_ms=0)
    )
    async def bill(order: dict[str, int]) -> None:
        if order["amount"] < 0:
            raise ValueError(f"negative amount {order['amount']}")
        if order["amount"] == 0:
            raise PaymentDeclined("card declined")

    async with app:
        for key, amount in ORDERS:
            await app.publish("orders", {"amount": amount}, key=key)
        for _ in range(WAIT_ROUNDS_MAX):
            if len(await app.transport.read_topic("orders.dlq")) == len(FAILING):
                return
            await asyncio.sleep(0.2)
    raise AssertionError("the app did not dead-letter the failing orders")


@pytest.fixture
def dead_letters(broker: EmbeddedBroker, cli: Cli) -> EmbeddedBroker:
    asyncio.run(_fill_dlq(broker.bootstrap_servers))
    return broker


def _records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    async def read() -> list[tuple[bytes | None, bytes]]:
        async with App(f"kafka://{bootstrap}") as app:
            return [(m.key, m.value) for m in await app.transport.read_topic(topic)]

    return asyncio.run(read())


def test_list_shows_origin_exception_and_attempts(dead_letters: EmbeddedBroker, cli: Cli) -> None:
    result = cli("dlq", "list", "orders.dlq")
    assert result.code == 0, result.err
    header, *rows = result.lines
    assert header.split() == [
        "PARTITION", "OFFSET", "ORIGIN", "KEY", "EXCEPTION", "ATTEMPTS", "LAST-FAILURE",
    ]  # fmt: skip
    by_key = {row.split()[3]: row.split() for row in rows}
    assert set(by_key) == FAILING
    assert by_key["k1"][4] == "builtins.ValueError"
    assert by_key["k2"][4] == f"{__name__}.PaymentDeclined"
    assert all(row[5] == "2" for row in by_key.values())  # max_attempts=2
    assert all(row[2].startswith("orders[") for row in by_key.values())
    assert all(row[6].endswith("+00:00") for row in by_key.values())

    as_json = json.loads(cli("dlq", "list", "orders.dlq", "--format", "json").out)
    declined = next(r for r in as_json if r["key"] == "k2")
    assert declined["original_topic"] == "orders"
    assert declined["exception_type"] == f"{__name__}.PaymentDeclined"
    assert declined["attempts"] == 2


def test_show_prints_every_header_the_traceback_and_the_value(
    dead_letters: EmbeddedBroker, cli: Cli
) -> None:
    listing = json.loads(cli("dlq", "list", "orders.dlq", "--format", "json").out)
    declined = next(r for r in listing if r["key"] == "k2")
    result = cli(
        "dlq", "show", "orders.dlq", str(declined["offset"]), "-p", str(declined["partition"])
    )
    assert result.code == 0, result.err
    out = result.out
    assert "key:        k2" in out
    assert "  shoal.dlq.original.topic: orders" in out
    assert "  shoal.dlq.exception.message: card declined" in out
    assert "  shoal.dlq.exception.traceback:" in out
    assert "    Traceback (most recent call last):" in out
    assert 'raise PaymentDeclined("card declined")' in out
    assert out.rstrip().endswith('{"amount":0}')

    as_json = json.loads(
        cli(
            "dlq", "show", "orders.dlq", str(declined["offset"]),
            "-p", str(declined["partition"]), "--format", "json",
        ).out
    )  # fmt: skip
    headers = {h["name"]: h["text"] for h in as_json["headers"]}
    assert headers["shoal.dlq.attempts"] == "2"
    assert as_json["value"] == {"text": '{"amount":0}'}


def test_show_errors(dead_letters: EmbeddedBroker, cli: Cli) -> None:
    missing = cli("dlq", "show", "orders.dlq", "999")
    assert missing.code == 1
    assert "no record at offset 999" in missing.err
    assert "Traceback" not in missing.err
    unknown = cli("dlq", "show", "nothing.dlq", "0")
    assert unknown.code == 1
    assert "topic 'nothing.dlq' does not exist" in unknown.err


def test_redrive_by_exception_then_all(dead_letters: EmbeddedBroker, cli: Cli) -> None:
    bootstrap = dead_letters.bootstrap_servers
    before = _records(bootstrap, "orders")
    assert len(before) == len(ORDERS)

    result = cli("dlq", "redrive", "orders.dlq", "--exception", "ValueError")
    assert result.code == 0, result.err
    assert result.out == "Redrove 2 records from orders.dlq.\n"
    keys = [k for k, _ in _records(bootstrap, "orders")]
    assert len(keys) == len(before) + 2
    assert keys.count(b"k1") == keys.count(b"k3") == 2

    by_key = cli("dlq", "redrive", "orders.dlq", "--where-key", "k2")
    assert by_key.out == "Redrove 1 record from orders.dlq.\n"
    everything = cli("dlq", "redrive", "orders.dlq", "--all")
    assert everything.out == "Redrove 3 records from orders.dlq.\n"
    assert len(_records(bootstrap, "orders")) == len(ORDERS) + 2 + 1 + 3
    # The DLQ is a log: redriving leaves it as it was.
    assert len(_records(bootstrap, "orders.dlq")) == len(FAILING)


def test_redrive_one_offset(dead_letters: EmbeddedBroker, cli: Cli) -> None:
    listing = json.loads(cli("dlq", "list", "orders.dlq", "--format", "json").out)
    one = listing[0]
    result = cli(
        "dlq", "redrive", "orders.dlq", "--offset", str(one["offset"]),
        "-p", str(one["partition"]),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.out == "Redrove 1 record from orders.dlq.\n"
    redriven = [k for k, _ in _records(dead_letters.bootstrap_servers, "orders")]
    assert redriven.count(one["key"].encode()) == 2


def test_redrive_needs_a_selection(cli: Cli) -> None:
    result = cli("dlq", "redrive", "orders.dlq")
    assert result.code == 2
    assert "one of the arguments" in result.err
    both = cli("dlq", "redrive", "orders.dlq", "--all", "--where-key", "k")
    assert both.code == 2


def test_client_properties_reach_the_redriving_app_as_url_parameters() -> None:
    import argparse

    from shoal.app.transports.kafka import KafkaTransport
    from shoal.cli.common import ClientContext

    args = argparse.Namespace(
        bootstrap_server="h:9092",
        timeout=5.0,
        verbose=False,
        client_properties=[("security.protocol", "SASL_SSL"), ("sasl.mechanism", "PLAIN")],
    )
    url = ClientContext(args).app_url()
    assert url == "kafka://h:9092?security.protocol=SASL_SSL&sasl.mechanism=PLAIN"
    transport = App(url).transport
    assert isinstance(transport, KafkaTransport)
    assert transport.config["security.protocol"] == "SASL_SSL"
    assert transport.config["sasl.mechanism"] == "PLAIN"
