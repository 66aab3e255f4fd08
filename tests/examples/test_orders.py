"""The order saga example, run for real: on an embedded broker, on kafka://, and as a program.

The scenario itself waits for outcomes; these tests check what a user of the example would
look at: where each order ended, what the stock says, what the DLQ held, what was refunded.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from examples.orders.order_state import IllegalTransition, NotYetApplicable, OrderBook

from shoal.embedded import EmbeddedBroker
from tests.examples.saga import CHECKS, Ran, run

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def ran_embedded(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    # One run serves every check: the scenario takes seconds, and the checks only read it.
    workdir = tmp_path_factory.mktemp("orders-embedded")
    return run(f"embedded://{workdir / 'broker'}", workdir / "work")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_saga_on_embedded_broker(ran_embedded: Ran, check: Callable[[Ran], None]) -> None:
    check(ran_embedded)


def test_saga_on_kafka_url_to_a_shoal_broker(shoal_broker: EmbeddedBroker, tmp_path: Path) -> None:
    ran = run(f"kafka://{shoal_broker.bootstrap_servers}", tmp_path / "work")
    for check in CHECKS:
        check(ran)


def test_order_book_waits_for_predecessors_and_ignores_redeliveries() -> None:
    book = OrderBook()
    with pytest.raises(NotYetApplicable):
        book.apply("A", "paid")
    assert book.apply("A", "placed") is True
    assert book.apply("A", "paid") is True
    assert book.apply("A", "paid") is False
    assert book.apply("A", "refunded", reason="out of stock") is True
    with pytest.raises(IllegalTransition):
        book.apply("A", "shipped")
    assert book.status("A") == "cancelled"


@pytest.mark.slow
def test_the_example_runs_as_a_program_and_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.orders"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All orders reached their expected end state." in done.stdout
    assert "ORD-5" in done.stdout and "inventory.reserved.dlq" in done.stdout
