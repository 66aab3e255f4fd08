"""A confluent-kafka group consumer in its own process, for tests that SIGKILL it.

Usage: ``python consumer_child.py '<json: bootstrap, group, topic, config>'``. Prints JSON lines
on stdout: ``{"assigned": [partitions]}`` whenever its assignment changes, and
``{"record": value}`` for each record it processes, before committing its offset
synchronously: a record it reported but did not commit is consumed again by another member
after a kill, which at-least-once allows; none committed is ever unreported.
"""

from __future__ import annotations

import json
import sys

from confluent_kafka import Consumer


def main(args: dict[str, object]) -> None:
    config = {
        "bootstrap.servers": args["bootstrap"],
        "group.id": args["group"],
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **dict(args.get("config") or {}),  # type: ignore[call-overload]
    }
    consumer = Consumer(config)
    consumer.subscribe([str(args["topic"])])
    assigned: list[int] = []
    while True:
        message = consumer.poll(0.1)
        now = sorted(tp.partition for tp in consumer.assignment())
        if now != assigned:
            assigned = now
            print(json.dumps({"assigned": assigned}), flush=True)
        if message is None or message.error():
            continue
        # "Processing" is reporting the record; the commit comes after it. (Reporting after the
        # commit would lose records from the test's view: a kill while the commit is in flight
        # leaves it durable on the broker but the record never reported.)
        value = message.value()
        print(json.dumps({"record": value.decode() if value else None}), flush=True)
        consumer.commit(message=message, asynchronous=False)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
