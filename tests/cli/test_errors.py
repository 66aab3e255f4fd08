"""Clear answers to user errors: exit 1 with one line naming the problem, exit 2 with the
usage for bad flags, and never a traceback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shoal.embedded import EmbeddedBroker
from tests.cli.support import Cli, closed_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.mark.parametrize(
    "argv",
    [
        ("topic", "list"),
        ("topic", "describe", "t"),
        ("topic", "create", "t"),
        ("produce", "t"),
        ("consume", "t", "-e"),
    ],
)
def test_unreachable_broker_is_named(cli: Cli, argv: tuple[str, ...]) -> None:
    address = f"127.0.0.1:{closed_port()}"
    result = cli(*argv, "--bootstrap-server", address, "--timeout", "1", stdin=b"x\n")
    assert result.code == 1
    assert f"cannot reach a broker at {address}" in result.err
    assert "Connection refused" in result.err
    assert "Traceback" not in result.err
    assert len(result.err.splitlines()) == 1, result.err


def test_consume_unknown_topic(cli: Cli) -> None:
    result = cli("consume", "missing", "-e")
    assert result.code == 1
    assert result.err == "shoal consume: topic 'missing' does not exist\n"


def test_consume_partition_out_of_range(cli: Cli) -> None:
    assert cli("produce", "t", "-q", stdin=b"x\n").code == 0
    result = cli("consume", "t", "-p", "7", "-e")
    assert result.code == 1
    assert "there is no partition 7" in result.err


def test_produce_partition_out_of_range(cli: Cli) -> None:
    result = cli("produce", "t", "-p", "3", stdin=b"x\n")
    assert result.code == 1
    assert "topic 't' has partitions 0-2; there is no partition 3" in result.err


def test_produce_to_unknown_topic_without_auto_create(
    cli: Cli, shoal_broker_factory: Callable[..., EmbeddedBroker]
) -> None:
    strict = shoal_broker_factory(auto_create_topics=False)
    result = cli("produce", "nope", "-b", strict.bootstrap_servers, stdin=b"x\n")
    assert result.code == 1
    assert result.err == "shoal produce: topic 'nope' does not exist\n"


def test_delivery_failure_exits_non_zero_with_the_error(
    cli: Cli, shoal_broker_factory: Callable[..., EmbeddedBroker]
) -> None:
    small = shoal_broker_factory(message_max_bytes=2_000)
    stdin = b"x" * 10_000 + b"\n"
    result = cli("produce", "t", "-p", "0", "-b", small.bootstrap_servers, stdin=stdin)
    assert result.code == 1
    assert "1 of 1 records were not delivered to topic 't'" in result.err
    assert "too large" in result.err.lower()
    assert "Produced 0 records" in result.out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("consume", "t", "-o", "yesterday"), "argument -o"),
        (("consume", "t", "-f", "%x"), "unknown format token %x"),
        (("consume", "t", "-f", "%s", "--format", "json"), "cannot be used together"),
        (("consume", "t", "-g", "g", "-p", "0"), "-p cannot be used with -g"),
        (("consume", "t", "-g", "g", "-o", "5"), "with -g, -o can only be"),
        (("consume", "t", "-c", "0"), "positive count"),
        (("consume",), "required: topic"),
        (("produce", "t", "-H", "novalue"), "expected KEY=VALUE"),
        (("produce", "t", "--acks", "2"), "invalid choice"),
        (("produce", "t", "--compression", "brotli"), "invalid choice"),
        (("produce", "t", "--timeout", "-1"), "positive number"),
        (("nonsense",), "invalid choice"),
        (("consume", "t", "--no-such-flag"), "unrecognized arguments"),
    ],
)
def test_bad_flags_exit_2_with_usage(cli: Cli, argv: tuple[str, ...], message: str) -> None:
    result = cli(*argv)
    assert result.code == 2
    assert result.err.startswith("usage: shoal"), result.err
    assert message in result.err
    assert "Traceback" not in result.err
