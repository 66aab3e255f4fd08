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
import os
import signal
from collections.abc import Callable

import uvicorn

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.handlers import HANDLERS
from shoal.registry import KafkaSchemaLog, RegistryService, build_registry_app
from shoal.security.oauthbearer import TokenError
from shoal.server.admin import build_admin_app
from shoal.server.authentication import SaslServerConfig
from shoal.server.group_status import sample_forever
from shoal.server.host_guard import is_loopback
from shoal.server.http import build_http_app
from shoal.server.http_auth import HttpAuthentication
from shoal.server.kafka import KafkaServer
from shoal.server.listeners import WILDCARD_HOSTS, Listener, SecurityProtocol
from shoal.server.metrics import CONTENT_TYPE, BrokerMetrics
from shoal.server.registry_access import BrokerSubjectAccess
from shoal.server.registry_metrics import CountRequests, RegistryMetrics
from shoal.server.request_metrics import RequestMetrics
from shoal.server.sasl_config import jwt_validator, refresh_jwks_forever, sasl_server_config
from shoal.server.sasl_internal import internal_client
from shoal.server.settings import Settings, SettingsError, parse_listen
from shoal.server.tls import CertificatePrincipal, ReloadingContext, TlsConfig, tls_config
from shoal.storage import LogManager

log = logging.getLogger(__name__)


class BrokerApp:
    def __init__(
        self,
        settings: Settings,
        *,
        adjust_broker_config: Callable[[BrokerSettings], BrokerSettings] | None = None,
    ) -> None:
        self.settings = settings
        # shape8 (issue 18): BrokerSettings fields Settings does not expose (tests cap
        # fetch_max_wait_ms_max) are set here, before the broker is built, not patched in after.
        self._adjust_broker_config = adjust_broker_config
        self.logs: LogManager | None = None
        self.broker: Broker | None = None
        self.kafka: KafkaServer | None = None
        """The first listener's server (``kafka_listen``'s when ``listeners`` is not set)."""
        self.listeners: dict[str, KafkaServer] = {}
        self.tls: ReloadingContext | None = None
        """The certificates of the TLS listeners (None when there is none)."""
        self._tls_watch_task: asyncio.Task[None] | None = None
        # Issue 13 (S2): a TLS listener whose own files or client-auth rule differ from the
        # ssl_* settings (listener_ssl_*) gets a context of its own, reloaded like self.tls.
        self.listener_tls: dict[TlsConfig, ReloadingContext] = {}
        self._listener_tls_tasks: list[asyncio.Task[None]] = []
        self._http: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self._group_status_task: asyncio.Task[None] | None = None  # issue 17 (console)
        self._jwks_task: asyncio.Task[None] | None = None
        self._sasl: SaslServerConfig | None = None
        """The SASL listeners' mechanisms and keys (None when there is none)."""
        self._stopping = asyncio.Event()
        self._status = "starting"
        self.registry = RegistryService()
        # Metrics (issue 17): counted by the listeners and the registry's HTTP wrapper.
        self.request_metrics = RequestMetrics()
        self.registry_metrics = RegistryMetrics()
        self._broker_metrics: BrokerMetrics | None = None

    @property
    def ready(self) -> bool:
        return self._status == "ready"

    def _readiness(self) -> tuple[bool, str]:
        # Issue 19, reliability slice: the only log directory failed (Kafka would halt, see
        # docs/architecture.md): still up for reads, but not ready, so probes and alerts see it.
        failure = self.broker.logs.health.failure if self.broker is not None else None
        if self.ready and failure is not None:
            return False, f"log directory failed ({failure}): read-only until restarted"
        return self.ready, self._status

    def _metrics(self) -> tuple[str, str]:
        # Called on the event loop, which owns the broker: reading its state is safe.
        if self.broker is None:  # still recovering logs: only say so
            return "# TYPE shoal_broker_ready gauge\nshoal_broker_ready 0\n", CONTENT_TYPE
        if self._broker_metrics is None:
            self._broker_metrics = BrokerMetrics(
                self.broker,
                self.listeners,
                self.request_metrics,
                self.registry_metrics,
                self._readiness,
            )
        return self._broker_metrics.render(), CONTENT_TYPE

    @property
    def kafka_port(self) -> int:
        if self.kafka is None:
            raise RuntimeError("the broker is not started")
        return self.kafka.port

    def listener_port(self, name: str) -> int:
        """The bound port of the listener ``name`` (as in ``listeners``, upper case)."""
        return self.listeners[name].port

    @property
    def http_port(self) -> int:
        server = self._http
        if server is None or not server.servers:
            return parse_listen(self.settings.http_listen)[1]
        return int(server.servers[0].sockets[0].getsockname()[1])

    async def start(self) -> None:
        listeners = self.settings.kafka_listeners()
        self._load_listener_tls(listeners)  # a bad certificate file stops the start here
        if any(listener.security_protocol.sasl for listener in listeners):
            # Checked (and the OAuth keys fetched) before anything binds, as the certificates.
            self._sasl = await asyncio.to_thread(sasl_server_config, self.settings)
        await self._start_http()

        for listener in self.settings.insecure_listeners(listeners):
            log.warning(
                "listener %s on %s:%d authenticates nobody (%s) and other machines can reach "
                "it: anyone who connects may read, write and delete every topic "
                "(allow_insecure is set)",
                listener.name,
                listener.host,
                listener.port,
                listener.security_protocol.value,
            )
        # The Kafka sockets are bound first (refusing clients until the broker serves on
        # them): with port 0 only the bound socket says which port clients must be told, and
        # the broker is built once, with those addresses.
        try:
            for listener in listeners:
                server = self._listener_server(listener)
                self.listeners[listener.name] = server
                if self.kafka is None:
                    self.kafka = server
                await server.bind()
            broker_config = self.settings.broker_config(
                bound_ports={name: server.port for name, server in self.listeners.items()}
            )
            if self._adjust_broker_config is not None:
                broker_config = self._adjust_broker_config(broker_config)
            # -- log compaction (issue 15, slice C): checked before the logs open (by
            # broker_config); the broker describes the same settings it starts the cleaner with.
            cleaner_settings = broker_config.cleaner
            self._status = "recovering logs"
            self.logs = await asyncio.to_thread(
                LogManager.open, self.settings.data_dir, default_config=broker_config.log
            )
            # -- log compaction (issue 15, slice C): the cleaner thread; logs.close stops it.
            # Its record work runs in a process of its own, off this process's GIL (POSIX: the
            # process gets its pipe by file descriptor).
            if cleaner_settings.enable:
                self.logs.start_cleaner(cleaner_settings, separate_process=os.name == "posix")
            self.broker = Broker(broker_config, self.logs, handlers=HANDLERS, begin_epochs=False)
            # Issue 19 (slice L): the new leader epochs are saved (two fsyncs per partition)
            # off the event loop, before anything is appended or served.
            self._status = "beginning leader epochs"
            await asyncio.to_thread(self.logs.begin_leader_epochs)
            # Transactions (issue 14): finish markers a crash left unwritten, run timeouts.
            self.broker.transactions.start()
            for server in self.listeners.values():
                await server.start(self.broker)
        except BaseException:
            for server in self.listeners.values():
                await server.stop()  # a failed start holds no port
            raise
        self._retention_task = asyncio.ensure_future(self._retention_loop())
        # Issue 17 (console): Burrow's group status windows advance without /metrics scrapes.
        self._group_status_task = asyncio.ensure_future(sample_forever(self.broker))
        if self.tls is not None:
            self._tls_watch_task = asyncio.ensure_future(
                self.tls.watch(self.settings.ssl_reload_check_interval_ms / 1000)
            )
        self._listener_tls_tasks = [
            asyncio.ensure_future(context.watch(self.settings.ssl_reload_check_interval_ms / 1000))
            for context in self.listener_tls.values()
        ]
        if self._sasl is not None:
            self._jwks_task = asyncio.ensure_future(refresh_jwks_forever(self._sasl, self.settings))
        # The registry is a Kafka client of this broker, so it starts only once the listeners
        # answer; the broker is ready only once the registry has replayed _schemas.
        self._status = "loading schema registry"
        registry_client = self._registry_client(listeners)
        if registry_client is None:
            log.warning(
                "the schema registry is off: it can reach this broker through no listener "
                "(a SASL listener needs SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN enabled)"
            )
        else:
            bootstrap, client_config = registry_client
            await asyncio.to_thread(
                self.registry.open, KafkaSchemaLog(bootstrap, client_config=client_config)
            )
        self._status = "ready"
        served = []
        for listener in listeners:
            host, port = self.broker.config.advertised_address(listener.name)
            served.append(
                f"kafka on {listener.host}:{self.listeners[listener.name].port} (clients are "
                f"told {host}:{port}) as {listener.name} ({listener.security_protocol.value})"
            )
        log.info(
            "shoal broker ready: node %d, %s, http on %s:%d, data in %s",
            self.broker.config.node_id,
            ", ".join(served),
            parse_listen(self.settings.http_listen)[0],
            self.http_port,
            self.settings.data_dir,
        )

    def _listener_server(self, listener: Listener) -> KafkaServer:
        """The server of one listener, as its security protocol asks: the one place where a
        listener's TLS and authentication are wired."""
        settings = self.settings
        protocol = listener.security_protocol
        ssl_context = None
        tls_principal = None
        if protocol.tls:
            ssl_context = self._listener_tls_context(listener.name).front
            if protocol is SecurityProtocol.SSL:
                # On SASL_SSL the principal is SASL's, as in Kafka.
                tls_principal = CertificatePrincipal(settings.ssl_principal_mapping_rules).of
        return KafkaServer(
            listener.host,
            listener.port,
            listener_name=listener.name,
            security_protocol=protocol.value,
            ssl_context=ssl_context,
            ssl_handshake_timeout_s=settings.ssl_handshake_timeout_ms / 1000,
            tls_principal=tls_principal,
            sasl=self._sasl if protocol.sasl else None,
            request_metrics=self.request_metrics,
        )

    def _tls_context(self) -> ReloadingContext:
        """The TLS listeners' certificates, loaded on first use (TlsError if a file is bad)."""
        if self.tls is None:
            self.tls = ReloadingContext(tls_config(self.settings))
        return self.tls

    def _load_listener_tls(self, listeners: list[Listener]) -> None:
        for listener in listeners:
            if listener.security_protocol.tls:
                self._listener_tls_context(listener.name)

    def _listener_tls_context(self, listener_name: str) -> ReloadingContext:
        """A listener's certificates: the shared context unless its listener_ssl_* settings
        make its configuration differ (then one per distinct configuration)."""
        config = tls_config(self.settings, listener_name)
        if config == tls_config(self.settings):
            return self._tls_context()
        if config not in self.listener_tls:
            self.listener_tls[config] = ReloadingContext(config)
        return self.listener_tls[config]

    async def _start_http(self) -> None:
        """The HTTP face: up first, so /livez answers and /readyz tells what the start waits for."""
        http_host, http_port = parse_listen(self.settings.http_listen)
        authentication = await asyncio.to_thread(self._http_authentication)
        if self.settings.http_ssl:
            self._tls_context()  # as for the listeners: a bad file stops the start here
        config = uvicorn.Config(
            build_http_app(
                self._readiness,
                CountRequests(
                    build_registry_app(self.registry, BrokerSubjectAccess(lambda: self.broker)),
                    self.registry_metrics,
                ),
                metrics=self._metrics,
                authentication=authentication,
                admin=build_admin_app(lambda: self.broker),  # issue 17: the admin API
                loopback_only=is_loopback(http_host),
            ),
            host=http_host,
            port=http_port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            ssl_context_factory=(
                (lambda _config, _default: self._tls_context().front)
                if self.settings.http_ssl
                else None
            ),
        )
        self._http = uvicorn.Server(config)
        self._http_task = asyncio.ensure_future(self._serve_http(self._http))
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()  # raises the bind error
                raise RuntimeError(f"HTTP listener on {self.settings.http_listen} did not start")
            await asyncio.sleep(0.01)

    async def _serve_http(self, server: uvicorn.Server) -> None:
        # issue 21 (docs slice): uvicorn logs a bind error, then calls sys.exit(), which would
        # escape the event loop as a traceback; the start fails with a clear error instead.
        try:
            await server.serve()
        except SystemExit:
            raise OSError(
                f"cannot serve HTTP on {self.settings.http_listen}: the address is in use or "
                "not available here (http_listen, --http-listen)"
            ) from None

    def _http_authentication(self) -> HttpAuthentication:
        """The credentials the HTTP face accepts (``http_authentication``). Blocking: a JWKS
        endpoint may be fetched."""
        kinds = {k.strip() for k in self.settings.http_authentication.split(",") if k.strip()}
        unknown = kinds - {"basic", "bearer"}
        if unknown:
            raise SettingsError(
                f"http_authentication: {', '.join(sorted(unknown))} is not basic or bearer"
            )
        check_password = None

        def credentials_version() -> int:
            # issue 17 (console): a change to the users forgets remembered passwords.
            broker = self.broker
            return -1 if broker is None else broker.scram_credentials.version

        if "basic" in kinds:

            def check_password(user: str, password: str) -> bool:
                # The users appear once the broker has opened its data directory.
                broker = self.broker
                return broker is not None and broker.scram_credentials.check_password(
                    user, password
                )

        check_token = None
        if "bearer" in kinds:
            validator = jwt_validator(self.settings, "http_authentication=bearer")

            def check_token(token: str) -> str | None:
                try:
                    return validator.validate(token).principal.removeprefix("User:")
                except TokenError:
                    return None

        return HttpAuthentication(
            check_password=check_password,
            check_token=check_token,
            credentials_version=credentials_version,
        )

    def _registry_client(self, listeners: list[Listener]) -> tuple[str, dict[str, str]] | None:
        """Where the registry's Kafka client connects (this broker, over loopback when a
        listener binds every interface) and its librdkafka security settings; None when no
        listener lets it in.

        A SASL listener comes first: there the registry logs in as shoal's internal user
        (a password drawn at start, held only in memory), whom the authorizer counts as a
        super user. Then PLAINTEXT, then SSL (with the broker's own key as its client
        certificate when client certificates are asked for).
        """
        order = (
            SecurityProtocol.SASL_PLAINTEXT,
            SecurityProtocol.SASL_SSL,
            SecurityProtocol.PLAINTEXT,
            SecurityProtocol.SSL,
        )
        for listener in sorted(listeners, key=lambda item: order.index(item.security_protocol)):
            protocol = listener.security_protocol
            host = "127.0.0.1" if listener.host in WILDCARD_HOSTS else listener.host
            bracketed = f"[{host}]" if ":" in host else host
            bootstrap = f"{bracketed}:{self.listeners[listener.name].port}"
            config: dict[str, str] = {"security.protocol": protocol.value}
            if protocol.sasl and self.broker is not None:
                login = internal_client(self._sasl, self.broker.scram_credentials)
                if not login:
                    continue  # only OAUTHBEARER: no password the registry could use
                config.update(login)
                config["security.protocol"] = protocol.value
            if protocol.tls:
                # Its own socket over loopback: the server certificate (which may name only
                # the public host) is not checked.
                config["enable.ssl.certificate.verification"] = "false"
                own = self.settings.listener_ssl(listener.name)
                if protocol is SecurityProtocol.SSL and own.client_auth != "none":
                    config["ssl.certificate.location"] = own.keystore_location
                    config["ssl.key.location"] = own.keystore_location
                    if own.key_password:
                        config["ssl.key.password"] = own.key_password
            return bootstrap, config
        return None

    def reload_certificates(self) -> bool:
        """Load the TLS listeners' certificate files again (SIGHUP): new connections get them."""
        contexts = ([] if self.tls is None else [self.tls]) + list(self.listener_tls.values())
        if not contexts:
            log.info("no TLS listener: no certificates to reload")
            return False
        return all([context.reload() for context in contexts])

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
        if self._group_status_task is not None:
            self._group_status_task.cancel()
        if self._tls_watch_task is not None:
            self._tls_watch_task.cancel()
        for task in self._listener_tls_tasks:
            task.cancel()
        if self._jwks_task is not None:
            self._jwks_task.cancel()
        await asyncio.to_thread(self.registry.close)
        if self.broker is not None:
            # Parked JoinGroup/SyncGroup requests are answered now, so in-flight requests drain.
            await self.broker.groups.stop()
        for server in self.listeners.values():
            await server.stop()
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
        loop = asyncio.get_running_loop()
        # Before start, so that no SIGHUP after the ready line can find its default action
        # (ending the process); uvicorn leaves SIGHUP alone. Off the main thread there are no
        # signal handlers: asyncio says so with RuntimeError, uvloop with ValueError.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self.reload_certificates)
        await self.start()
        # After start: uvicorn sets its own handlers when its server starts on the main thread,
        # and the last one set wins.
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stopping.wait()
        finally:
            await self.stop()
