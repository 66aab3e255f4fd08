"""``shoal demo``: the options it hands to each example, its refusals, and where it finds the
examples in a checkout (the installed wheel's copy is tested in tests/packaging)."""

from __future__ import annotations

import argparse
import sys

import pytest

from shoal import demo
from shoal.cli import build_parser, main
from shoal.cli.demo import example_argv


def _args(*argv: str) -> argparse.Namespace:
    return build_parser(["demo", *argv]).parse_args(["demo", *argv])


def test_market_on_the_embedded_broker_streams_avro_for_the_given_time() -> None:
    assert example_argv(_args("market", "--seconds", "5", "--rate", "500")) == [
        "--seconds", "5", "--rate", "500", "--live",
    ]  # fmt: skip


def test_market_on_another_broker_uses_json_unless_given_a_registry() -> None:
    assert example_argv(_args("market", "-b", "127.0.0.1:9092")) == [
        "--broker", "kafka://127.0.0.1:9092", "--seconds", "10", "--rate", "2000", "--live",
        "--format", "json",
    ]  # fmt: skip
    with_registry = _args("market", "-b", "h:9092", "--registry", "http://h:8081")
    assert example_argv(with_registry)[-2:] == ["--registry", "http://h:8081"]


def test_orders_takes_only_the_broker() -> None:
    assert example_argv(_args("orders", "--bootstrap", "h:9092", "-v")) == [
        "--verbose", "--broker", "kafka://h:9092",
    ]  # fmt: skip


def test_orders_refuses_the_market_options_instead_of_ignoring_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "orders", "--seconds", "5", "--rate", "100"])
    assert exited.value.code == 2
    assert "--seconds and --rate: only for the market demo" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ("nope",),
        ("orders", "--registry", "http://h:8081"),
        ("market", "--seconds", "0"),
        ("market", "--rate", "-5"),
        ("market", "--seconds", "1e9"),
    ],
)
def test_bad_options_are_usage_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", *argv])
    assert exited.value.code == 2


def test_a_checkout_runs_its_own_examples() -> None:
    root = demo.example_root()
    assert root is not None
    assert (root / "examples" / "market" / "__main__.py").is_file()
    assert callable(demo.load("market").main)
    assert sys.modules["examples.market.__main__"].__file__.startswith(str(root))  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="no example 'nope'"):
        demo.load("nope")
