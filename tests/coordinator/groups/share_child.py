"""A confluent-kafka share consumer in its own process that acquires records and never
acknowledges them, for tests that SIGKILL it with records in flight.

Usage: ``python share_child.py '<json: bootstrap, group, topic>'``. Prints a JSON line
``{"record": "<key>:<delivery count>"}`` for each record it was handed (the report format of
consumer_child.py, which tests/coordinator/groups/clients.py reads).
"""

from __future__ import annotations

import json
import sys
import threading

from confluent_kafka import ShareConsumer


def main(args: dict[str, str]) -> None:
    consumer = ShareConsumer(
        {
            "bootstrap.servers": args["bootstrap"],
            "group.id": args["group"],
            "share.acknowledgement.mode": "explicit",
        }
    )
    consumer.subscribe([args["topic"]])
    while True:
        messages = consumer.poll(0.2)
        for message in messages:
            if message.error() is None:
                key = (message.key() or b"").decode()
                report = f"{key}:{message.delivery_count()}"
                print(json.dumps({"record": report}), flush=True)
        if messages:
            # Holding them: explicit mode allows no further poll before they are settled, so
            # the child waits here, records locked, until it is killed.
            threading.Event().wait()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
