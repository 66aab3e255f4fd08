"""A confluent-kafka share consumer in its own process, for tests that SIGKILL it.

Usage: ``python share_child.py '<json: bootstrap, group, topic, accept>'``. Prints a JSON line
``{"record": "<key>:<delivery count>"}`` for each record it was handed (the report format of
consumer_child.py, which tests/coordinator/groups/clients.py reads). With ``accept`` it then
accepts the poll's records after ``process_s`` seconds (commit_sync) and polls on; without,
it holds the first records it gets, never acknowledged, until it is killed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from confluent_kafka import AcknowledgeType, ShareConsumer


def main(args: dict[str, Any]) -> None:
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
        if messages and args.get("accept"):
            time.sleep(float(args.get("process_s", 0)))  # "processing": records in flight
            for message in messages:
                consumer.acknowledge(message, AcknowledgeType.ACCEPT)
            consumer.commit_sync()
        elif messages:
            # Holding them: explicit mode allows no further poll before they are settled, so
            # the child waits here, records locked, until it is killed.
            threading.Event().wait()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
