"""``embedded://PATH``: a shoal broker in this process, which the App then talks to over the
Kafka protocol like any other (the Kafka transport, on the broker's loopback port).

This is the framework's one way into the broker side (:mod:`shoal.embedded`, an explicit
exception in the import-linter contract "the framework is a Kafka client"); the module imports
it only when an embedded broker is started.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.embedded import EmbeddedBroker


class EmbeddedBrokers:
    """The owner of the embedded brokers of a process: one per data directory, shared by every
    App that names it (a directory can hold only one broker: it is locked).

    Lifetime: the first :meth:`acquire` of a directory starts its broker, and the
    :meth:`release` of its last user stops it, so the broker lives exactly as long as some App
    of the process uses it. :meth:`stop_all` stops whatever is still running (a test that wants
    a clean slate; Apps that were never stopped). Thread-safe: Apps acquire and release from
    worker threads, as starting and stopping a broker blocks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[EmbeddedBroker, int]] = {}

    def acquire(self, data_dir: str, **settings: Any) -> EmbeddedBroker:
        """The broker of ``data_dir``, started if it is not running yet; one more user.
        ``settings`` (:class:`~shoal.embedded.EmbeddedBroker` keywords) apply only when this
        call starts it: a program or test acquiring first chooses them for the Apps that
        name the directory after it."""
        from shoal.embedded import EmbeddedBroker

        key = str(Path(data_dir).resolve())
        with self._lock:
            if key in self._running:
                broker, users = self._running[key]
            else:
                broker, users = EmbeddedBroker(data_dir, **settings).start(), 0
            self._running[key] = (broker, users + 1)
            return broker

    def release(self, broker: EmbeddedBroker) -> None:
        """One user fewer; the last one stops the broker."""
        with self._lock:
            for key, (running, users) in list(self._running.items()):
                if running is broker:
                    if users > 1:
                        self._running[key] = (running, users - 1)
                        return
                    del self._running[key]
                    break
        broker.stop()

    def data_dirs(self) -> list[str]:
        """The (resolved) data directories with a running broker."""
        with self._lock:
            return list(self._running)

    def stop_all(self) -> None:
        """Stop every broker still running, whoever uses it."""
        with self._lock:
            brokers = [broker for broker, _ in self._running.values()]
            self._running.clear()
        for broker in brokers:
            broker.stop()


EMBEDDED_BROKERS = EmbeddedBrokers()
"""The process's embedded brokers (``embedded://PATH``)."""
