"""A broker inside the current process, like SQLite: for tests and single-process apps.

    with EmbeddedBroker("./data") as broker:
        producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers})

It runs on its own thread and event loop, so the caller's code (sync or async) is unaffected.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

from shoal.server.app import BrokerApp
from shoal.server.settings import Settings

START_TIMEOUT_S = 60.0
"""Recovering a large data directory can take a while; a hung start should still fail."""


class EmbeddedBroker:
    def __init__(
        self, data_dir: str, *, port: int = 0, http_port: int = 0, **settings: Any
    ) -> None:
        self._settings = replace(
            Settings(),
            data_dir=data_dir,
            kafka_listen=f"127.0.0.1:{port}",
            http_listen=f"127.0.0.1:{http_port}",
            **settings,
        )
        self._app: BrokerApp | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.app.kafka_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.app.http_port}"

    @property
    def app(self) -> BrokerApp:
        if self._app is None:
            raise RuntimeError("the embedded broker is not started")
        return self._app

    def start(self) -> Self:
        started: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="shoal-embedded", daemon=True
        )
        self._thread.start()
        started.result(timeout=START_TIMEOUT_S)
        return self

    def _run(self, started: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = BrokerApp(self._settings)
        try:
            loop.run_until_complete(app.start())
        except BaseException as exc:
            started.set_exception(exc)
            loop.close()
            return
        self._app = app
        started.set_result(None)
        loop.run_forever()
        loop.run_until_complete(app.stop())
        loop.close()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
