"""A confluent-kafka share consumer in its own process, for tests that SIGKILL it.

Usage: ``python share_child.py '<json: bootstrap, group, topic, accept, process_s>'``. Prints
JSON lines in the report format of consumer_child.py (``{"record": ...}``, which
tests/coordinator/groups/clients.py reads): ``"d|<key>|<delivery count>|<monotonic s>"`` for
each record it is handed, and with ``accept`` ``"a|<monotonic s>|<key>,<key>..."`` once the
broker confirmed it accepted them (``time.monotonic`` is the machine's CLOCK_MONOTONIC, one
clock for every process). With ``accept`` it accepts each poll's records after ``process_s``
seconds and polls on; without, it holds the first records it gets, never acknowledged, until
it is killed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from confluent_kafka import AcknowledgeType, KafkaException, ShareConsumer


def report(text: str) -> None:
    print(json.dumps({"record": text}), flush=True)


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
        try:
            messages = [m for m in consumer.poll(0.2) if m.error() is None]
        except KafkaException:
            continue  # the broker restarting: poll again
        keys = [(m.key() or b"").decode() for m in messages]
        for key, message in zip(keys, messages, strict=True):
            report(f"d|{key}|{message.delivery_count()}|{time.monotonic()}")
        if messages and args.get("accept"):
            time.sleep(float(args.get("process_s", 0)))  # "processing": records in flight
            for message in messages:
                consumer.acknowledge(message, AcknowledgeType.ACCEPT)
            try:
                results = consumer.commit_sync()
            except KafkaException:
                continue  # unconfirmed: the records may come back, which at-least-once allows
            if all(error is None for error in results.values()):
                report(f"a|{time.monotonic()}|{','.join(keys)}")
        elif messages:
            # Holding them: explicit mode allows no further poll before they are settled, so
            # the child waits here, records locked, until it is killed.
            threading.Event().wait()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
