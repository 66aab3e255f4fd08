"""An aiokafka or kafka-python group consumer in its own process, for tests that SIGKILL it.

Usage: ``python python_client_child.py '<json: client, bootstrap, group, topic, config>'`` where
``client`` is ``aiokafka`` or ``kafka-python`` and ``config`` holds keyword arguments of the
client's consumer (``session_timeout_ms``...). Prints the same JSON lines as
consumer_child.py: ``{"assigned": [partitions]}`` whenever its assignment changes, and
``{"record": value}`` for each record it processes; a batch's offsets are committed after its
records are reported, so a kill can cause redelivery but never an unreported commit.
"""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from collections.abc import Iterable
from typing import Any


class Reporter:
    def __init__(self) -> None:
        self.assigned: list[int] = []

    def assignment(self, partitions: Iterable[Any]) -> None:
        now = sorted(tp.partition for tp in partitions)
        if now != self.assigned:
            self.assigned = now
            print(json.dumps({"assigned": now}), flush=True)

    def records(self, messages: Iterable[Any]) -> None:
        for message in messages:
            value = message.value
            print(json.dumps({"record": value.decode() if value else None}), flush=True)


def _options(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "bootstrap_servers": args["bootstrap"],
        "group_id": args["group"],
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        **dict(args.get("config") or {}),
    }


async def run_aiokafka(args: dict[str, Any]) -> None:
    from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]
    from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

    consumer = AIOKafkaConsumer(str(args["topic"]), **_options(args))
    await consumer.start()
    reporter = Reporter()
    while True:
        batches = await consumer.getmany(timeout_ms=100)
        reporter.assignment(consumer.assignment())
        for tp, messages in batches.items():
            reporter.records(messages)
            try:
                await consumer.commit({tp: messages[-1].offset + 1})
            except KafkaError:
                pass  # a rebalance took the partition: its next owner consumes these again


def run_kafka_python(args: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        # kafka-python reads its schemas with the deprecated importlib.resources.read_text.
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaConsumer  # type: ignore[import-untyped]
        from kafka.errors import KafkaError  # type: ignore[import-untyped]
        from kafka.structs import OffsetAndMetadata  # type: ignore[import-untyped]

    consumer = KafkaConsumer(str(args["topic"]), **_options(args))
    reporter = Reporter()
    while True:
        batches = consumer.poll(timeout_ms=100)
        reporter.assignment(consumer.assignment())
        for tp, messages in batches.items():
            reporter.records(messages)
            try:
                consumer.commit({tp: OffsetAndMetadata(messages[-1].offset + 1, "", -1)})
            except KafkaError:
                pass  # a rebalance took the partition: its next owner consumes these again


def main(args: dict[str, Any]) -> None:
    if args["client"] == "aiokafka":
        asyncio.run(run_aiokafka(args))
    elif args["client"] == "kafka-python":
        run_kafka_python(args)
    else:
        raise SystemExit(f"unknown client {args['client']!r}")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
