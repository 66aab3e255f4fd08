"""A whole broker process: HTTP face, log recovery, Kafka listener, retention, shutdown.

Start order: the HTTP face first (so /livez answers and /readyz says 503 while logs recover);
the Kafka socket bound (its port is part of the broker's config); recovery; then the Kafka
listener serves; ready only after both. Stop order: stop accepting, finish in-flight requests,
flush and checkpoint every log, mark a clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn

from shoal.broker.broker import Broker
from shoal.broker.handlers import HANDLERS
from shoal.registry import KafkaSchemaLog, RegistryService, build_registry_app
from shoal.server.http import build_http_app
from shoal.server.kafka import KafkaServer
from shoal.server.metrics import CONTENT_TYPE, render_group_metrics
from shoal.server.sasl_config import refresh_jwks_forever, sasl_server_config
from shoal.server.sasl_internal import internal_client
from shoal.server.settings import Settings, parse_listen
from shoal.storage import LogManager

log = logging.getLogger(__name__)


class BrokerApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.logs: LogManager | None = None
        self.broker: Broker | None = None
        self.kafka: KafkaServer | None = None
        self._http: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self._jwks_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._status = "starting"
        self.registry = RegistryService()

    @property
    def ready(self) -> bool:
        return self._status == "ready"

    def _readiness(self) -> tuple[bool, str]:
        return self.ready, self._status

    def _metrics(self) -> tuple[str, str]:
        # Called on the event loop, which owns the broker: reading its state is safe.
        body = render_group_metrics(self.broker) if self.broker is not None else ""
        return body, CONTENT_TYPE

    @property
    def kafka_port(self) -> int:
        if self.kafka is None:
            raise RuntimeError("the broker is not started")
        return self.kafka.port

    @property
    def http_port(self) -> int:
        server = self._http
        if server is None or not server.servers:
            return parse_listen(self.settings.http_listen)[1]
        return int(server.servers[0].sockets[0].getsockname()[1])

    async def start(self) -> None:
        http_host, http_port = parse_listen(self.settings.http_listen)
        config = uvicorn.Config(
            build_http_app(
                self._readiness, build_registry_app(self.registry), metrics=self._metrics
            ),
            host=http_host,
            port=http_port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self._http = uvicorn.Server(config)
        self._http_task = asyncio.ensure_future(self._http.serve())
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()  # raises the bind error
                raise RuntimeError(f"HTTP listener on {self.settings.http_listen} did not start")
            await asyncio.sleep(0.01)

        host, port = parse_listen(self.settings.kafka_listen)
        # The Kafka socket is bound first (refusing clients until the broker serves on it): with
        # port 0 only the bound socket says which port clients must be told, and the broker is
        # built once, with that address.
        # TEMPORARY (issue 13): the one place the listener's security protocol is read, until
        # listener_security_protocol_map replaces kafka_listener_protocol.
        sasl = await asyncio.to_thread(sasl_server_config, self.settings)
        self.kafka = KafkaServer(host, port, sasl=sasl)
        await self.kafka.bind()
        try:
            broker_config = self.settings.broker_config(bound_port=self.kafka.port)
            self._status = "recovering logs"
            self.logs = await asyncio.to_thread(
                LogManager.open, self.settings.data_dir, default_config=broker_config.log
            )
            self.broker = Broker(broker_config, self.logs, handlers=HANDLERS)
            await self.kafka.start(self.broker)
        except BaseException:
            await self.kafka.stop()  # a failed start holds no port
            raise
        self._retention_task = asyncio.ensure_future(self._retention_loop())
        if sasl is not None:
            self._jwks_task = asyncio.ensure_future(refresh_jwks_forever(sasl, self.settings))
        # The registry is a Kafka client of this broker, so it starts only once the listener
        # answers; the broker is ready only once the registry has replayed _schemas.
        self._status = "loading schema registry"
        registry_host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104
        registry_client = internal_client(sasl, self.broker.scram_credentials)
        if registry_client is None:
            log.warning(
                "the schema registry is off: no SASL mechanism it can use is enabled "
                "(it needs SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN)"
            )
        else:
            await asyncio.to_thread(
                self.registry.open,
                KafkaSchemaLog(f"{registry_host}:{self.kafka.port}", client_config=registry_client),
            )
        self._status = "ready"
        log.info(
            "shoal broker ready: node %d, kafka on %s:%d (clients are told %s:%d), "
            "http on %s:%d, data in %s",
            self.broker.config.node_id,
            host,
            self.kafka.port,
            self.broker.config.advertised_host,
            self.broker.config.advertised_port,
            http_host,
            self.http_port,
            self.settings.data_dir,
        )

    async def _retention_loop(self) -> None:
        interval = self.settings.retention_check_interval_s
        while True:
            await asyncio.sleep(interval)
            if self.logs is not None:
                deleted = await asyncio.to_thread(self.logs.apply_retention)
                if deleted:
                    log.info("retention deleted %d segments", deleted)

    async def stop(self) -> None:
        self._status = "stopping"
        if self._retention_task is not None:
            self._retention_task.cancel()
        if self._jwks_task is not None:
            self._jwks_task.cancel()
        await asyncio.to_thread(self.registry.close)
        if self.broker is not None:
            # Parked JoinGroup/SyncGroup requests are answered now, so in-flight requests drain.
            await self.broker.groups.stop()
        if self.kafka is not None:
            await self.kafka.stop()
        if self.broker is not None:
            # Background work of the last appends (snapshots) finishes before the logs close.
            await self.broker.drain()
        if self.logs is not None:
            await asyncio.to_thread(self.logs.close)
        if self._http is not None:
            self._http.should_exit = True
        if self._http_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._http_task

    def request_stop(self) -> None:
        self._stopping.set()

    async def run_until_stopped(self) -> None:
        """Run until SIGTERM/SIGINT (or :meth:`request_stop`), then shut down cleanly."""
        await self.start()
        # After start: uvicorn sets its own handlers when its server starts on the main thread,
        # and the last one set wins.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stopping.wait()
        finally:
            await self.stop()
