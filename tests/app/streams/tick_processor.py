"""A stream processor run as its own process by the table-restore tests, so that it can be
SIGKILLed: ``python -m tests.app.streams.tick_processor BOOTSTRAP PREFIX --log FILE [--slow]``.

It reads ``PREFIX.ticks`` (JSON ``{"id", "k", "ts"}``), keeps per key the ids of each 100 ms
tumbling window (50 ms allowed lateness) and a count of events, sends each closed window to
``PREFIX.windows`` and each late event to ``PREFIX.late``. It stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

from shoal.app.message import Message
from shoal.app.streams import Aggregation, Tumbling
from shoal.app.streams.processor import Outputs, Processor, json_value
from shoal.app.streams.table import Table, WindowedTable
from shoal.app.transports.kafka import KafkaTransport

log = logging.getLogger("tick_processor")

WINDOW_MS = 100
LATENESS_MS = 50
SESSION_TIMEOUT_MS = 2_000
"""A SIGKILLed member's partitions move on after this, not 45 s (the test's broker lowers
its minimum, group.min.session.timeout.ms, to allow it)."""
HEARTBEAT_INTERVAL_MS = 400
"""Well inside the session timeout, as the consumer requires."""
SLOW_HANDLER_S = 0.002
"""With --slow, each record takes this long: a SIGKILL then lands inside a fetch."""

IDS: Aggregation[int, list[int]] = Aggregation(
    initial=list, add=lambda agg, value, _ts: sorted([*agg, value])
)


def stores(prefix: str) -> tuple[WindowedTable[int, list[int]], Table]:
    source = f"{prefix}.ticks"
    windows = WindowedTable(
        f"{prefix}.tick-windows",
        source=source,
        windows=Tumbling(WINDOW_MS),
        aggregation=IDS,
        allowed_lateness_ms=LATENESS_MS,
    )
    return windows, Table(f"{prefix}.tick-counts", source=source)


class HangBeforeCommit:
    """A consumer that, once ``after`` records were handled, announces itself in ``marker``
    and hangs in its next commit: the state of that fetch is in the changelog, its offsets
    are not committed, and the test SIGKILLs the process right there."""

    def __init__(self, consumer: Any, after: int, marker: Path, handled: Any) -> None:
        self._consumer = consumer
        self._after = after
        self._marker = marker
        self._handled = handled

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        if self._handled() >= self._after:
            self._marker.write_text(json.dumps(sorted(offsets.items())))
            await asyncio.Event().wait()  # until killed
        await self._consumer.commit(offsets)


async def main(args: argparse.Namespace) -> None:
    bootstrap, prefix, slow = args.bootstrap, args.prefix, args.slow
    transport = KafkaTransport(
        bootstrap,
        **{
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        },
    )
    await transport.start()
    windows, counts = stores(prefix)
    skipped = 0

    async def handle(msg: Message, out: Outputs) -> None:
        tick: dict[str, Any] = json.loads(msg.value)
        key = tick["k"]
        step = windows.add(msg, key, tick["ts"], tick["id"])
        for result in step.closed:
            body = [result.key, result.window.start_ms, result.window.end_ms, result.value]
            out.send(f"{prefix}.windows", json_value(body), result.key)
        if step.late:
            out.send(f"{prefix}.late", msg.value, key)
        if not counts.put(msg, key, counts.get(key, 0) + 1):
            nonlocal skipped
            skipped += 1
            if skipped == 1:  # logged at once: this process may well be SIGKILLed later
                log.info(
                    "a replayed record skipped: %s[%d]@%d", msg.topic, msg.partition, msg.offset
                )
        if slow:
            await asyncio.sleep(SLOW_HANDLER_S)

    proc = Processor(
        transport,
        group=f"{prefix}.group",
        topics=[f"{prefix}.ticks"],
        handle=handle,
        stores=[windows, counts],
        outputs=[f"{prefix}.windows", f"{prefix}.late"],
        fetch_records_max=20,
        exactly_once=args.exactly_once,
    )
    if args.hang_before_commit_after is not None:
        make_consumer = transport.consumer

        def consumer(topics: list[str], group: str) -> Any:
            return HangBeforeCommit(
                make_consumer(topics, group),
                args.hang_before_commit_after,
                Path(args.log + ".hang"),
                lambda: proc.records_handled,
            )

        transport.consumer = consumer  # type: ignore[method-assign]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await proc.run(stop)
    finally:
        await transport.stop()
        log.info("replayed records skipped: %d", skipped)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("prefix")
    parser.add_argument("--slow", action="store_true")
    parser.add_argument("--log", required=True, help="file the processor logs to")
    parser.add_argument("--exactly-once", action="store_true", help="transactional fetches")
    parser.add_argument("--hang-before-commit-after", type=int, help="see HangBeforeCommit")
    args = parser.parse_args()
    logging.basicConfig(filename=args.log, level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("shoal.app.transports").setLevel(logging.WARNING)
    asyncio.run(main(args))
