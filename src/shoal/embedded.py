"""A broker inside the current process, like SQLite: for tests and single-process apps.

    with EmbeddedBroker("./data") as broker:
        producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers})

It runs on its own thread and event loop, so the caller's code (sync or async) is unaffected.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

from shoal.broker.broker_settings import BrokerSettings
from shoal.server.app import BrokerApp
from shoal.server.event_loops import loop_factory
from shoal.server.settings import WILDCARD_HOSTS, Settings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
"""Recovering a large data directory can take a while; a hung start should still fail."""


class EmbeddedBroker:
    """``host`` is the address the Kafka listener binds (loopback by default);
    ``advertised_listener`` (``HOST:PORT``) is what clients are told to connect to, needed
    when ``host`` is a wildcard such as 0.0.0.0; ``node_id`` is the broker's node.id;
    ``adjust_broker_config`` (for tests) returns the broker's config given the one the settings
    make, before the broker is built; ``event_loop`` is the loop of the broker's thread:
    asyncio's unless ``"uvloop"`` or ``"auto"`` (uvloop when installed, as ``shoal broker``
    runs by default) is given. Other keyword arguments are
    :class:`~shoal.server.settings.Settings` fields. Bad settings raise
    :class:`~shoal.server.settings.SettingsError` here, before anything starts."""

    def __init__(
        self,
        data_dir: str,
        *,
        port: int = 0,
        http_port: int = 0,
        host: str = "127.0.0.1",
        advertised_listener: str = "",
        node_id: int = Settings().node_id,
        adjust_broker_config: Callable[[BrokerSettings], BrokerSettings] | None = None,
        event_loop: str = "asyncio",
        **settings: Any,
    ) -> None:
        bind = f"[{host}]" if ":" in host else host
        # ``listeners`` in settings names the listeners itself (then host and port are unused).
        listen = Settings().kafka_listen if settings.get("listeners") else f"{bind}:{port}"
        self._settings = replace(
            Settings(),
            data_dir=data_dir,
            kafka_listen=listen,
            http_listen=f"127.0.0.1:{http_port}",
            advertised_listener=advertised_listener,
            node_id=node_id,
            event_loop=event_loop,
            **settings,
        )
        self._settings.broker_config()
        self._new_loop = loop_factory(event_loop)
        self._adjust_broker_config = adjust_broker_config
        self._local_host = "127.0.0.1" if host in WILDCARD_HOSTS else bind
        self._app: BrokerApp | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def bootstrap_servers(self) -> str:
        """An address of the listener from this machine (not necessarily the advertised one)."""
        return f"{self._local_host}:{self.app.kafka_port}"

    @property
    def http_url(self) -> str:
        scheme = "https" if self.app.settings.http_ssl else "http"
        return f"{scheme}://127.0.0.1:{self.app.http_port}"

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
        loop = self._new_loop()
        self._loop = loop
        app = BrokerApp(self._settings, adjust_broker_config=self._adjust_broker_config)
        try:
            loop.run_until_complete(app.start())
        except BaseException as exc:
            # Release what the partial start took (the HTTP listener and its task, logs already
            # opened) before reporting, so a failed start holds no port, file or task.
            try:
                loop.run_until_complete(app.stop())
            except Exception:
                log.exception("cleaning up after a failed start")
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
