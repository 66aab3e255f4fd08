"""One group consumer of the workload in a child process, so that it can be SIGKILLed.

Run as ``python -m tests.reliability.consumer_child BOOTSTRAP TOPIC NAME SESSION_TIMEOUT_MS``.
It runs the workload's consumer loop and writes each event (read, resume, acknowledged
commit) as one JSON line to stdout as it happens, flushed, so that the parent's history holds
everything the consumer saw up to the moment it died (a line cut short by the kill is
dropped). SIGTERM makes it leave the group cleanly (close).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
from typing import Any

from tests.reliability.history import Commit, Event, History, Read, Resume
from tests.reliability.workload import Workload, WorkloadSettings

EVENT_TYPES: dict[str, Any] = {cls.__name__: cls for cls in (Read, Resume, Commit)}


class PrintingHistory(History):
    def record(self, event: Event) -> None:
        line = json.dumps({"type": type(event).__name__, **dataclasses.asdict(event)})
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


def parse_event(line: str) -> Event | None:
    """The event a child printed, or None for a line the kill cut short."""
    try:
        fields = json.loads(line)
        return EVENT_TYPES[fields.pop("type")](**fields)  # type: ignore[no-any-return]
    except (ValueError, KeyError, TypeError):
        return None


def main(bootstrap: str, topic: str, name: str, session_timeout_ms: str) -> None:
    settings = WorkloadSettings(topic=topic, session_timeout_ms=int(session_timeout_ms))
    workload = Workload(bootstrap, settings, history=PrintingHistory())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer = threading.Thread(target=workload.consume, args=(name,))
    consumer.start()
    stop.wait()
    workload.stop_consuming()
    consumer.join()


if __name__ == "__main__":
    main(*sys.argv[1:5])
