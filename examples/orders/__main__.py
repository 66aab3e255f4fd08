"""``python -m examples.orders [--broker URL]``: run the saga, print what happened, exit 0 if
every order reached its expected end state (1 if not, 2 if a step hung)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import uuid
from pathlib import Path

from examples.orders.order_state import OrderBook
from examples.orders.plan import PLAN
from examples.orders.scenario import Outcome, Scenario, ScenarioTimeout


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.orders", description=__doc__)
    parser.add_argument(
        "--broker",
        help="broker URL (kafka://HOST:PORT, amqp://, redis://, nats://, embedded://PATH); "
        "default: an embedded broker in a temporary directory",
    )
    parser.add_argument(
        "--namespace",
        help="topic and group prefix; default: none on a fresh embedded broker, a random one "
        "on any other, so earlier runs' events are not read again",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the framework's logs")
    return parser.parse_args(argv)


def _states(book: OrderBook) -> str:
    lines = []
    for planned in PLAN:
        order_id = planned.order.order_id
        state = book.orders.get(order_id)
        status = "(none)" if state is None or state.status is None else state.status
        mark = "ok " if status == planned.status else "BAD"
        path = " -> ".join(state.history) if state is not None else ""
        reason = f"  [{state.reason}]" if state is not None and state.reason else ""
        lines.append(f"  {mark} {order_id:<6} {status:<10} {path}{reason}")
        lines.append(f"             {planned.shows}")
    return "\n".join(lines)


def _report(scenario: Scenario, outcome: Outcome | None) -> None:
    print("Timeline (seconds since the first event):")
    print(scenario.timeline.render())
    print("\nFinal state of each order:")
    print(_states(scenario.book))
    if outcome is None:
        return
    print(f"\nStock left: {outcome.stock}")
    print(f"Duplicate payment {outcome.duplicate_id[:12]}... reservations of ORD-1: ", end="")
    print(sum(1 for r in outcome.reservations if r[0] == "ORD-1"))
    for dead in outcome.dead_letters:
        error = (dead.header("shoal.dlq.exception.message") or b"").decode()
        attempts = (dead.header("shoal.dlq.attempts") or b"").decode()
        print(f"Dead-lettered {dead.topic}: {error} after {attempts} attempts; redriven")
    for problem in outcome.problems:
        print(f"PROBLEM: {problem}")
    print("\nAll orders reached their expected end state." if outcome.ok else "\nFAILED.")


async def _main(args: argparse.Namespace, workdir: Path) -> int:
    broker = args.broker or f"embedded://{workdir / 'broker'}"
    namespace = args.namespace
    if namespace is None:
        namespace = "" if args.broker is None else f"orders-{uuid.uuid4().hex[:8]}."
    scenario = Scenario(broker, workdir, namespace=namespace)
    print(
        f"Running the order saga on {broker}" + (f" (namespace {namespace})" if namespace else "")
    )
    try:
        outcome = await scenario.run()
    except ScenarioTimeout as exc:
        _report(scenario, None)
        print(f"\nHUNG: {exc}")
        return 2
    _report(scenario, outcome)
    return 0 if outcome.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with tempfile.TemporaryDirectory(prefix="shoal-orders-") as tmp:
        return asyncio.run(_main(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
