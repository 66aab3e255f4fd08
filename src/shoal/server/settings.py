"""Broker process settings: defaults, then a TOML config file, then SHOAL_* environment
variables, then command-line flags (each overriding the one before)."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.features import TRANSACTION_VERSION_LEVEL, TRANSACTION_VERSION_LEVELS
from shoal.coordinator.assignors import ASSIGNORS
from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.mixed_group import parse_policy
from shoal.security.acl import AclError
from shoal.security.acl_authorizer import AuthorizerConfig, parse_super_users
from shoal.security.principal import PrincipalMapper, PrincipalMappingError
from shoal.security.quotas import QuotaSettings
from shoal.server.event_loops import EVENT_LOOPS
from shoal.server.listener_ssl import (
    CLIENT_AUTH_VALUES,
    ListenerSsl,
    ListenerSslError,
    parse_listener_values,
)
from shoal.server.listeners import (
    DEFAULT_PROTOCOL_MAP,
    Listener,
    ListenerError,
    SecurityProtocol,
    parse_listeners,
    parse_protocol_map,
)
from shoal.server.listeners import WILDCARD_HOSTS as WILDCARD_HOSTS
from shoal.storage import FlushPolicy, LogConfig
from shoal.storage.cleaner_thread import DEDUPE_BUFFER_BYTES_MIN, CleanerSettings


class SettingsError(ValueError):
    """A setting with a bad name or value; the message says which and what is expected."""


DEFAULT_KAFKA_LISTEN: Final = "127.0.0.1:9092"
NODE_ID_MAX: Final = 2**31 - 1
"""node.id is an int32 on the wire (Metadata, FindCoordinator, DescribeCluster)."""
HOSTNAME_LENGTH_MAX: Final = 253
"""The longest DNS name."""
_HOSTNAME: Final = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
"""Letters, digits, '-', '.' and '_' (container names often have one), no dot at either end."""
STANDARD_AUTHORIZER: Final = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
AUTHORIZER_CLASS_NAMES: Final = frozenset({STANDARD_AUTHORIZER, "standard"})


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: str = "./shoal-data"
    """The log directory: every partition, the internal topics, SCRAM users, ACLs and dynamic
    configs. One broker uses it at a time (a ``.lock`` file refuses a second)."""
    kafka_listen: str = DEFAULT_KAFKA_LISTEN
    """Shorthand for ``listeners = "PLAINTEXT://HOST:PORT"`` (one plaintext listener)."""
    http_listen: str = "127.0.0.1:8080"
    """HOST:PORT of the HTTP face: schema registry, admin API, console, /metrics, /livez and
    /readyz."""
    log_level: str = "info"
    """debug, info, warning or error."""
    log_format: str = "text"
    """text, or json: one JSON object a line, for a log collector."""
    event_loop: str = "auto"
    """The event loop ``shoal broker`` runs on: ``uvloop`` (faster sockets and TLS; installed
    with shoal on Linux and macOS), ``asyncio`` (the standard library's), or ``auto``: uvloop
    when it is installed, else asyncio. An embedded broker runs on asyncio's loop unless its
    ``event_loop`` argument says otherwise."""
    flush_policy: str = "sync"
    """When an acks=all write is answered: ``sync`` after the fsync that covers it (one fsync
    is shared by the writes that arrived meanwhile); ``interval`` at once, fsync every second;
    ``none`` at once, fsync on segment roll and shutdown. A topic's flush.ms overrides it."""
    auto_create_topics: bool = True
    """Kafka's auto.create.topics.enable: a Metadata or Produce request naming an unknown topic
    creates it, with num_partitions partitions."""
    num_partitions: int = 1
    """Kafka's num.partitions: partitions of an auto-created topic, and of a CreateTopics that
    leaves the count to the broker."""
    message_max_bytes: int = BrokerSettings().message_max_bytes
    """Kafka's message.max.bytes: the largest record batch a producer may send; one byte more is
    refused with MESSAGE_TOO_LARGE (a topic's max.message.bytes overrides it)."""
    retention_check_interval_s: float = 300.0
    """Kafka's log.retention.check.interval.ms, in seconds: how often segments past retention.ms or
    retention.bytes are deleted."""
    group_initial_rebalance_delay_ms: int = GroupConfig().initial_rebalance_delay_ms
    """Kafka's group.initial.rebalance.delay.ms: the first rebalance of an empty classic group
    waits this long for more members to join."""
    group_min_session_timeout_ms: int = GroupConfig().min_session_timeout_ms
    """Kafka's group.min.session.timeout.ms: a classic member asking for a shorter session
    timeout is refused with INVALID_SESSION_TIMEOUT."""
    node_id: int = BrokerSettings().node_id
    """node.id: the broker id clients see in Metadata, FindCoordinator, DescribeCluster."""
    advertised_listener: str = ""
    """HOST:PORT clients are told to connect to (Kafka's advertised.listeners); empty: the
    kafka_listen address, which must then not be a wildcard. The shorthand of
    advertised_listeners for a single listener."""
    # -- listeners and TLS (issue 13, slice L) ----------------------------------------------
    listeners: str = ""
    """Kafka's listeners, ``NAME://HOST:PORT,...``; empty: ``PLAINTEXT://<kafka_listen>``."""
    advertised_listeners: str = ""
    """Kafka's advertised.listeners, ``NAME://HOST:PORT,...``: what each listener's clients are
    told (a listener not named here is advertised at its bind address)."""
    listener_security_protocol_map: str = DEFAULT_PROTOCOL_MAP
    """``NAME:PROTOCOL,...``: each listener's security protocol."""
    allow_insecure: bool = False
    """Accept a listener that other machines can reach with no client authentication
    (PLAINTEXT, or SSL without ssl_client_auth=required); a warning is logged for it."""
    ssl_keystore_location: str = ""
    """PEM file with the server's private key and certificate chain (Kafka's
    ssl.keystore.type=PEM); needed by SSL and SASL_SSL listeners."""
    ssl_key_password: str = field(default="", repr=False)
    """Password of an encrypted private key in the keystore file."""
    ssl_truststore_location: str = ""
    """PEM file of the CA certificates client certificates are checked against."""
    ssl_client_auth: str = "none"
    """none, requested or required: whether SSL listeners ask clients for a certificate."""
    ssl_enabled_protocols: str = "TLSv1.2,TLSv1.3"
    """TLS versions offered; TLS 1.3 is chosen whenever the client has it."""
    ssl_principal_mapping_rules: str = "DEFAULT"
    """Kafka's rules from a client certificate's subject to its principal name."""
    ssl_handshake_timeout_ms: int = 10_000
    """A client that has not finished its TLS handshake this long after connecting is dropped."""
    ssl_reload_check_interval_ms: int = 10_000
    """How often the keystore and truststore files are checked for a change (then reloaded)."""
    # -- TLS per listener, and cipher suites (issue 13, S2): Kafka's
    # listener.name.<name>.ssl.* overrides and ssl.cipher.suites --
    listener_ssl_keystore_location: str = ""
    """``NAME:PATH,...``: a listener's own keystore (Kafka's
    listener.name.<name>.ssl.keystore.location); other TLS listeners use ssl_keystore_location."""
    listener_ssl_key_password: str = field(default="", repr=False)
    """``NAME:PASSWORD,...``: the password of that listener's private key."""
    listener_ssl_truststore_location: str = ""
    """``NAME:PATH,...``: a listener's own CA certificates for client certificates."""
    listener_ssl_client_auth: str = ""
    """``NAME:none|requested|required,...``: a listener's own ssl_client_auth."""
    ssl_cipher_suites: str = ""
    """Kafka's ssl.cipher.suites: the TLS 1.2 cipher suites offered, comma-separated, by IANA
    (Java) or OpenSSL name; empty: OpenSSL's secure defaults. TLS 1.3's suites cannot be
    narrowed (CPython has no call for it): a list naming none of them turns TLS 1.3 off."""
    # -- ACLs (issue 13, slice A): Kafka's authorizer.class.name, super.users and
    # allow.everyone.if.no.acl.found --
    authorizer_class_name: str = ""
    """Kafka's StandardAuthorizer (org.apache.kafka.metadata.authorizer.StandardAuthorizer, or
    ``standard``) authorizes every request against the ACLs; empty: no authorizer."""
    super_users: str = ""
    """Principals that may do anything, separated by semicolons: User:admin;User:ops"""
    allow_everyone_if_no_acl_found: bool = False
    """Kafka's allow.everyone.if.no.acl.found: with an authorizer, a resource that no ACL names is
    open to everyone (true) or to super users only (false, Kafka's default)."""
    # -- client quotas (issue 13, quotas slice): Kafka's quota.window.num,
    # quota.window.size.seconds and max.connection.creation.rate.
    quota_window_num: int = QuotaSettings().quota_window_num
    """Kafka's quota.window.num: the windows a client's rate is measured over."""
    quota_window_size_seconds: int = QuotaSettings().quota_window_size_seconds
    """Kafka's quota.window.size.seconds: the length of each window."""
    max_connection_creation_rate: int = QuotaSettings().max_connection_creation_rate
    """Kafka's max.connection.creation.rate: new connections a second the broker accepts, across
    all clients; past it, accepting waits."""

    # -- the HTTP face's security (issue 13) ----------------------------------------------
    http_authentication: str = ""
    """Who may use the HTTP face (registry, metrics, readiness; /livez stays open): empty for
    anyone; ``basic`` (HTTP basic against the broker's SCRAM users), ``bearer`` (a JWT checked
    as OAUTHBEARER's, with the sasl_oauthbearer_* settings), or both, comma-separated."""
    http_ssl: bool = False
    """Serve the HTTP face over TLS with the listeners' certificate (ssl_keystore_location),
    asking clients for certificates as ssl_client_auth says; reloaded with it."""

    # -- SASL (issue 13, SASL slice): Kafka's names, dots as underscores ---------------------
    sasl_enabled_mechanisms: str = "SCRAM-SHA-512,SCRAM-SHA-256"
    """Comma-separated, of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER. SCRAM by default:
    its password never crosses the wire; PLAIN sends it, so enable it on TLS listeners. SCRAM
    users are kept in the data directory (``scram-credentials.json``: salt, stored key, server
    key and iterations per user and mechanism, never the password) and managed with
    ``shoal user`` or ``kafka-configs.sh --alter --entity-type users``; PLAIN checks a password
    against the same users (either of their SCRAM credentials)."""
    connections_max_reauth_ms: int = 0
    """KIP-368: an authenticated session lasts this long, then the client re-authenticates on
    its connection (or is closed at its next request); 0: sessions last as long as their
    credential (OAuth tokens end at their exp)."""
    connection_failed_authentication_delay_ms: int = 100
    """A failed authentication is answered, and the connection closed, after this long."""
    sasl_plain_users_file: str = ""
    """shoal's: more PLAIN users, from a file of salted hashes, one
    ``NAME:pbkdf2-sha512:ITERATIONS:BASE64_SALT:BASE64_HASH`` a line (``shoal user hash NAME``
    prints one). PLAIN accepts a SCRAM user's password, or a password matching this file."""
    sasl_server_max_receive_size: int = 512 * 1024
    """The largest frame, in bytes, a connection may send before it has authenticated."""
    sasl_oauthbearer_jwks_endpoint_url: str = ""
    """Where OAUTHBEARER's token-signing keys are: an https:// URL (refetched every
    sasl_oauthbearer_jwks_endpoint_refresh_ms) or a file:// URL / plain path to a JWKS file."""
    sasl_oauthbearer_jwks_endpoint_refresh_ms: int = 3_600_000
    """How often an https:// JWKS is fetched again."""
    sasl_oauthbearer_expected_issuer: str = ""
    """When set, a token's iss must be exactly this."""
    sasl_oauthbearer_expected_audience: str = ""
    """Comma-separated; when set, a token's aud must name one of them."""
    sasl_oauthbearer_sub_claim_name: str = "sub"
    """The claim holding the principal name."""
    sasl_oauthbearer_scope_claim_name: str = "scope"
    """The claim holding the scopes a token grants."""
    sasl_oauthbearer_required_scopes: str = ""
    """shoal's: comma-separated scopes every token must grant (none when empty)."""
    sasl_oauthbearer_clock_skew_seconds: int = 30
    """Leeway, in seconds, when checking a token's exp, nbf and iat against the clock."""
    sasl_oauthbearer_allow_unsecured: bool = False
    """shoal's: accept unsigned (alg none) tokens, as Kafka's unsecured validator does. For
    tests only: anyone can then log in as anyone."""
    # -- KIP-848 consumer groups (issue 16, slice K): Kafka's group.consumer.* ---------------
    group_consumer_session_timeout_ms: int = GroupConfig().consumer_session_timeout_ms
    """Kafka's group.consumer.session.timeout.ms: a KIP-848 member silent this long is removed."""
    group_consumer_heartbeat_interval_ms: int = GroupConfig().consumer_heartbeat_interval_ms
    """Kafka's group.consumer.heartbeat.interval.ms: the interval KIP-848 members are told to
    heartbeat at."""
    group_consumer_assignors: str = ",".join(GroupConfig().consumer_assignors)
    """Comma-separated, the default first: ``uniform`` and ``range`` are the ones shoal has."""
    group_consumer_migration_policy: str = GroupConfig().consumer_migration_policy
    """disabled, upgrade, downgrade or bidirectional (shoal.coordinator.mixed_group)."""
    # -- KIP-932 share groups (issue 16, slice K): Kafka's group.share.* ----------------------
    group_share_record_lock_duration_ms: int = GroupConfig().share_record_lock_duration_ms
    """Kafka's group.share.record.lock.duration.ms: how long a share consumer holds a record it was
    given before it is offered to another."""
    group_share_delivery_count_limit: int = GroupConfig().share_delivery_count_limit
    """Kafka's group.share.delivery.count.limit: deliveries of a record before it is archived
    (2 to 10)."""
    group_share_session_timeout_ms: int = GroupConfig().share_session_timeout_ms
    """Kafka's group.share.session.timeout.ms: a share member silent this long is removed."""
    group_share_heartbeat_interval_ms: int = GroupConfig().share_heartbeat_interval_ms
    """Kafka's group.share.heartbeat.interval.ms: the interval share members are told to
    heartbeat at."""
    share_version: int = GroupConfig().share_version
    """The share.version feature: 1 (the default) serves KIP-932 share groups, 0 does not."""

    # -- transactions (issue 14 leftovers) ---------------------------------------------------
    transaction_version: int = TRANSACTION_VERSION_LEVEL
    """The transaction.version feature: 2 (the default) lets Kafka 4.x clients use
    transactions V2 (KIP-890: EndTxn v5, an epoch bump per transaction, partitions added by
    Produce); 1 or 0 keeps them on the classic protocol, as librdkafka always is."""

    # -- log compaction (issue 15, slice C): Kafka's log.cleaner.* broker configs -----------
    log_cleaner_enable: bool = True
    """Run the log cleaner, which compacts topics with cleanup.policy=compact."""
    log_cleaner_dedupe_buffer_size: int = 128 * 1024 * 1024
    """Bytes of the cleaner's offset map, counted as Kafka counts them (24 a key; at least
    1 MiB): how many distinct keys one clean can take in."""
    log_cleaner_io_max_bytes_per_second: float = float("inf")
    """The cleaner's disk reads and writes together stay under this rate (default: no limit).
    Kafka's log.cleaner.io.max.bytes.per.second, which AlterConfigs can change at runtime."""
    log_cleaner_backoff_ms: int = 15_000
    """How long the cleaner sleeps when no log needs cleaning. Kafka's log.cleaner.backoff.ms,
    which AlterConfigs can change at runtime."""
    log_cleaner_io_buffer_load_factor: float = 0.9
    """How full the offset map may get before a clean stops and continues next time."""

    def cleaner_settings(self) -> CleanerSettings:
        """The log cleaner's settings, checked."""
        if self.log_cleaner_dedupe_buffer_size < DEDUPE_BUFFER_BYTES_MIN:
            raise SettingsError(
                f"log_cleaner_dedupe_buffer_size must be at least {DEDUPE_BUFFER_BYTES_MIN} "
                f"bytes (1 MiB), not {self.log_cleaner_dedupe_buffer_size}"
            )
        if not 0 < self.log_cleaner_io_buffer_load_factor <= 1:
            raise SettingsError("log_cleaner_io_buffer_load_factor must be in (0, 1]")
        if not self.log_cleaner_io_max_bytes_per_second > 0 or self.log_cleaner_backoff_ms <= 0:
            raise SettingsError(
                "log_cleaner_io_max_bytes_per_second and log_cleaner_backoff_ms must be positive"
            )
        return CleanerSettings(
            enable=self.log_cleaner_enable,
            dedupe_buffer_bytes=self.log_cleaner_dedupe_buffer_size,
            io_buffer_load_factor=self.log_cleaner_io_buffer_load_factor,
            io_max_bytes_per_second=self.log_cleaner_io_max_bytes_per_second,
            backoff_ms=self.log_cleaner_backoff_ms,
        )

    def kafka_listeners(self) -> list[Listener]:
        """Every listener, checked: from ``listeners``, or the one ``kafka_listen`` names."""
        try:
            protocol_map = parse_protocol_map(self.listener_security_protocol_map)
            if self.listeners:
                if self.kafka_listen != DEFAULT_KAFKA_LISTEN:
                    raise SettingsError(
                        "set listeners or kafka_listen (the shorthand for one PLAINTEXT "
                        "listener), not both"
                    )
                text = self.listeners
            else:
                host, port = parse_listen(self.kafka_listen)
                # The wildcard check of the shorthand, with its own flags in the message.
                self.advertised_address(host, port)
                text = f"PLAINTEXT://{f'[{host}]' if ':' in host else host}:{port}"
            advertised = self.advertised_listeners
            if self.advertised_listener:
                if advertised:
                    raise SettingsError(
                        "set advertised_listener (HOST:PORT, for one listener) or "
                        "advertised_listeners (NAME://HOST:PORT,...), not both"
                    )
                parse_advertised(self.advertised_listener)
                names = [entry.split("://")[0] for entry in text.split(",") if entry.strip()]
                if len(names) != 1:
                    raise SettingsError(
                        "advertised_listener (HOST:PORT) is the shorthand for a single "
                        "listener; with several, set advertised_listeners "
                        "(NAME://HOST:PORT for each)"
                    )
                advertised = f"{names[0].strip()}://{self.advertised_listener}"
            return parse_listeners(text, advertised, protocol_map, parse_advertised)
        except ListenerError as exc:
            raise SettingsError(str(exc)) from None

    def listener_ssl(self, name: str) -> ListenerSsl:
        """Listener ``name``'s TLS files and client-auth rule: its listener_ssl_* entries,
        else the ssl_* settings (SettingsError when a list does not parse)."""
        try:
            own = {
                key: parse_listener_values(text, f"listener_{key}").get(name.upper())
                for key, text in (
                    ("ssl_keystore_location", self.listener_ssl_keystore_location),
                    ("ssl_key_password", self.listener_ssl_key_password),
                    ("ssl_truststore_location", self.listener_ssl_truststore_location),
                    ("ssl_client_auth", self.listener_ssl_client_auth),
                )
            }
        except ListenerSslError as exc:
            raise SettingsError(str(exc)) from None
        keystore = own["ssl_keystore_location"]
        password = own["ssl_key_password"]
        if keystore is not None and password is None:
            password = ""  # a listener's own keystore does not take the shared key's password
        return ListenerSsl(
            keystore_location=keystore or self.ssl_keystore_location,
            key_password=self.ssl_key_password if password is None else password,
            truststore_location=own["ssl_truststore_location"] or self.ssl_truststore_location,
            client_auth=own["ssl_client_auth"] or self.ssl_client_auth,
        )

    def _check_listener_ssl(self, listeners: list[Listener]) -> None:
        """Every name in the listener_ssl_* lists is a TLS listener; each TLS listener has a
        keystore, and a truststore when it checks client certificates."""
        tls_names = {item.name for item in listeners if item.security_protocol.tls}
        for key in ("keystore_location", "key_password", "truststore_location", "client_auth"):
            setting = f"listener_ssl_{key}"
            try:
                names = parse_listener_values(getattr(self, setting), setting)
            except ListenerSslError as exc:
                raise SettingsError(str(exc)) from None
            for name in names:
                if name not in tls_names:
                    raise SettingsError(
                        f"{setting} names {name}, which is not an SSL or SASL_SSL listener "
                        f"(TLS listeners: {', '.join(sorted(tls_names)) or 'none'})"
                    )
        for name in sorted(tls_names):
            ssl = self.listener_ssl(name)
            if ssl.client_auth not in CLIENT_AUTH_VALUES:
                raise SettingsError(
                    f"listener {name}: ssl_client_auth must be none, requested or required, "
                    f"not {ssl.client_auth!r}"
                )
            if not ssl.keystore_location:
                raise SettingsError(
                    f"listener {name} uses TLS: set ssl_keystore_location (or its own in "
                    "listener_ssl_keystore_location) to a PEM file with the server's private "
                    "key and certificate chain"
                )
            if ssl.client_auth != "none" and not ssl.truststore_location:
                raise SettingsError(
                    f"listener {name}: ssl_client_auth={ssl.client_auth} checks client "
                    "certificates: set ssl_truststore_location (or its own in "
                    "listener_ssl_truststore_location) to a PEM file of the CA certificates "
                    "that sign them"
                )

    def insecure_listeners(self, listeners: list[Listener]) -> list[Listener]:
        """Listeners other machines can reach that authenticate nobody."""
        return [
            listener
            for listener in listeners
            if not listener.loopback
            and not listener.security_protocol.sasl
            and not (
                listener.security_protocol is SecurityProtocol.SSL
                and self.listener_ssl(listener.name).client_auth == "required"
            )
        ]

    def check_security(self, listeners: list[Listener]) -> None:
        """The TLS settings, and no unauthenticated listener beyond this machine unless
        allow_insecure says so."""
        if self.ssl_client_auth not in ("none", "requested", "required"):
            raise SettingsError(
                f"ssl_client_auth must be none, requested or required, not {self.ssl_client_auth!r}"
            )
        protocols = [p.strip() for p in self.ssl_enabled_protocols.split(",") if p.strip()]
        if not protocols or not set(protocols) <= {"TLSv1.2", "TLSv1.3"}:
            raise SettingsError(
                f"ssl_enabled_protocols {self.ssl_enabled_protocols!r}: give TLSv1.2 and/or "
                "TLSv1.3 (older versions are broken and not offered)"
            )
        try:
            PrincipalMapper(self.ssl_principal_mapping_rules)
        except PrincipalMappingError as exc:
            raise SettingsError(str(exc)) from None
        if self.ssl_handshake_timeout_ms <= 0 or self.ssl_reload_check_interval_ms <= 0:
            raise SettingsError(
                "ssl_handshake_timeout_ms and ssl_reload_check_interval_ms must be positive"
            )
        self._check_listener_ssl(listeners)
        insecure = self.insecure_listeners(listeners)
        if insecure and not self.allow_insecure:
            listener = insecure[0]
            how = listener.security_protocol.value
            if listener.security_protocol is SecurityProtocol.SSL:
                how += f" with ssl_client_auth={self.listener_ssl(listener.name).client_auth}"
            raise SettingsError(
                f"listener {listener.name} binds {listener.host}, which other machines can "
                f"reach, and authenticates nobody ({how}): anyone who reaches it may read, "
                "write and delete every topic. Bind "
                "127.0.0.1, or use SSL with ssl_client_auth=required or a SASL listener, or "
                "accept the risk with --allow-insecure (allow_insecure = true)"
            )

    def broker_config(
        self, bound_port: int | None = None, bound_ports: Mapping[str, int] | None = None
    ) -> BrokerSettings:
        """The broker's settings. ``bound_ports`` are the ports the listeners are bound to, by
        listener name, once known (``bound_port``: the first listener's): with port 0 only the
        bound socket tells which port clients must be told (unless it is advertised)."""
        if not 0 <= self.node_id <= NODE_ID_MAX:
            raise SettingsError(f"node_id must be between 0 and {NODE_ID_MAX}, not {self.node_id}")
        listeners = self.kafka_listeners()
        self.check_security(listeners)
        ports = dict(bound_ports or {})
        if bound_port is not None:
            ports.setdefault(listeners[0].name, bound_port)
        advertised = tuple(
            (listener.name, *listener.advertised_address(ports.get(listener.name)))
            for listener in listeners
        )
        _, advertised_host, advertised_port = advertised[0]
        if self.event_loop not in EVENT_LOOPS:
            raise SettingsError(
                f"event_loop must be one of {', '.join(EVENT_LOOPS)}, not {self.event_loop!r}"
            )
        if self.log_format not in ("text", "json"):
            raise SettingsError(f"log_format must be text or json, not {self.log_format!r}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise SettingsError(
                f"log_level must be debug, info, warning or error, not {self.log_level!r}"
            )
        try:
            policy = FlushPolicy(self.flush_policy)
        except ValueError as exc:
            choices = ", ".join(p.value for p in FlushPolicy)
            raise SettingsError(f"flush_policy must be one of {choices}") from exc
        quota = self.quota_settings()
        return BrokerSettings(
            authorizer=self.authorizer_config(),
            node_id=self.node_id,
            advertised_host=advertised_host,
            advertised_port=advertised_port,
            advertised_listeners=advertised,
            auto_create_topics=self.auto_create_topics,
            num_partitions=self.num_partitions,
            message_max_bytes=self.message_max_bytes,
            log=LogConfig(flush_policy=policy),
            group=GroupConfig(
                initial_rebalance_delay_ms=self.group_initial_rebalance_delay_ms,
                min_session_timeout_ms=self.group_min_session_timeout_ms,
                **self.consumer_group_settings(),
            ),
            quota=quota,
            transaction_version=self.checked_transaction_version(),
            cleaner=self.cleaner_settings(),  # issue 15 leftovers: log.cleaner.* described
        )

    def checked_transaction_version(self) -> int:
        if self.transaction_version not in TRANSACTION_VERSION_LEVELS:
            raise SettingsError(
                f"transaction_version must be 0, 1 or 2, not {self.transaction_version}"
            )
        return self.transaction_version

    def consumer_group_settings(self) -> dict[str, Any]:
        """The KIP-848 fields of GroupConfig (issue 16, slice K), checked."""
        assignors = tuple(a.strip() for a in self.group_consumer_assignors.split(",") if a.strip())
        unknown = [a for a in assignors if a not in ASSIGNORS]
        if unknown or not assignors:
            raise SettingsError(
                f"group_consumer_assignors: {', '.join(unknown) or 'none given'}; the assignors "
                f"shoal has are {', '.join(ASSIGNORS)}"
            )
        if (
            not 0
            < self.group_consumer_heartbeat_interval_ms
            < self.group_consumer_session_timeout_ms
        ):
            raise SettingsError(
                "group_consumer_heartbeat_interval_ms must be positive and below "
                "group_consumer_session_timeout_ms"
            )
        if parse_policy(self.group_consumer_migration_policy) is None:
            raise SettingsError(
                "group_consumer_migration_policy must be disabled, upgrade, downgrade or "
                "bidirectional"
            )
        return {
            "consumer_migration_policy": self.group_consumer_migration_policy.strip().lower(),
            "consumer_session_timeout_ms": self.group_consumer_session_timeout_ms,
            "consumer_heartbeat_interval_ms": self.group_consumer_heartbeat_interval_ms,
            "consumer_assignors": assignors,
            **self.share_group_settings(),
        }

    def share_group_settings(self) -> dict[str, Any]:
        """The KIP-932 fields of GroupConfig (issue 16, slice K), checked."""
        if self.group_share_record_lock_duration_ms < 1000:
            raise SettingsError("group_share_record_lock_duration_ms must be at least 1000")
        if not 2 <= self.group_share_delivery_count_limit <= 10:
            raise SettingsError("group_share_delivery_count_limit must be between 2 and 10")
        if not 0 < self.group_share_heartbeat_interval_ms < self.group_share_session_timeout_ms:
            raise SettingsError(
                "group_share_heartbeat_interval_ms must be positive and below "
                "group_share_session_timeout_ms"
            )
        if self.share_version not in (0, 1):
            raise SettingsError("share_version must be 0 or 1")
        return {
            "share_version": self.share_version,
            "share_record_lock_duration_ms": self.group_share_record_lock_duration_ms,
            "share_delivery_count_limit": self.group_share_delivery_count_limit,
            "share_session_timeout_ms": self.group_share_session_timeout_ms,
            "share_heartbeat_interval_ms": self.group_share_heartbeat_interval_ms,
        }

    def authorizer_config(self) -> AuthorizerConfig | None:
        name = self.authorizer_class_name.strip()
        if not name:
            return None
        if name not in AUTHORIZER_CLASS_NAMES:
            raise SettingsError(
                f"authorizer_class_name {name!r} is not an authorizer shoal has: use "
                f"{STANDARD_AUTHORIZER} (Kafka's, or its short name 'standard'), or leave it "
                "empty for no authorizer"
            )
        try:
            users = parse_super_users(self.super_users)
        except AclError as exc:
            raise SettingsError(f"super_users {self.super_users!r}: {exc}") from exc
        return AuthorizerConfig(users, self.allow_everyone_if_no_acl_found)

    def quota_settings(self) -> QuotaSettings:
        try:
            return QuotaSettings(
                quota_window_num=self.quota_window_num,
                quota_window_size_seconds=self.quota_window_size_seconds,
                max_connection_creation_rate=self.max_connection_creation_rate,
            )
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc

    def advertised_address(self, host: str, port: int) -> tuple[str, int]:
        """The address clients are told, given the bound ``host`` and ``port``.

        A wildcard bind with nothing advertised is an error, as in Kafka ("advertised.listeners
        cannot use the nonroutable meta-address 0.0.0.0"): a client on another machine would
        be told an address it cannot reach, bootstrap, and then fail on every request.
        """
        if self.advertised_listener:
            return parse_advertised(self.advertised_listener)
        if host in WILDCARD_HOSTS:
            raise SettingsError(
                f"kafka_listen {self.kafka_listen!r} binds every interface, but clients must be "
                "told an address they can reach: set advertised_listener (--advertised-listener "
                f"HOST:PORT, e.g. this machine's name or IP with port {port}, or "
                f"127.0.0.1:{port} if only clients on this machine connect)"
            )
        return host, port


def parse_advertised(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 address in brackets) that a client can connect to."""
    example = "e.g. broker.example.com:9092, 10.0.0.5:9092 or [2001:db8::5]:9092"
    if "://" in value:
        raise SettingsError(
            f"advertised_listener {value!r}: give HOST:PORT without a listener name "
            f"(advertised_listeners takes NAME://HOST:PORT), {example}"
        )
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise SettingsError(f"advertised_listener {value!r} must look like HOST:PORT, {example}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise SettingsError(f"advertised_listener {value!r}: port {port} is out of range 1-65535")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None and not (len(host) <= HOSTNAME_LENGTH_MAX and _HOSTNAME.match(host)):
        raise SettingsError(
            f"advertised_listener {value!r}: {host!r} is not a host name or IP address, {example}"
        )
    if address is not None and address.version == 6 and not bracketed:
        raise SettingsError(
            f"advertised_listener {value!r}: put an IPv6 address in brackets, {example}"
        )
    if address is not None and address.is_unspecified:
        raise SettingsError(
            f"advertised_listener {value!r}: {host} is not an address a client can connect to; "
            f"advertise a routable one, {example}"
        )
    return host, port


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(
            f"listen address {value!r} must look like HOST:PORT, e.g. 127.0.0.1:9092"
        )
    return host.strip("[]") or "127.0.0.1", int(port)


def load_settings(
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    settings = Settings()
    if config_file is not None:
        try:
            with open(config_file, "rb") as f:
                doc = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {config_file}: {exc}") from exc
        settings = _apply(settings, doc, f"config file {config_file}")
    env = os.environ if environ is None else environ
    from_env = {
        key[len("SHOAL_") :].lower(): value
        for key, value in env.items()
        if key.startswith("SHOAL_")
    }
    settings = _apply(settings, from_env, "environment", strict=False)
    return _apply(settings, {k: v for k, v in (overrides or {}).items() if v is not None}, "flags")


def _apply(
    settings: Settings, values: Mapping[str, Any], source: str, *, strict: bool = True
) -> Settings:
    known = {f.name: f for f in fields(Settings)}
    changes: dict[str, Any] = {}
    for name, raw in values.items():
        key = name.replace("-", "_").replace(".", "_")
        field = known.get(key)
        if field is None:
            if strict:
                raise SettingsError(
                    f"unknown setting {name!r} in {source}; known: {', '.join(known)}"
                )
            continue
        changes[key] = _coerce(key, raw, type(getattr(settings, key)), source)
    return replace(settings, **changes)


def _coerce(name: str, raw: object, kind: type, source: str) -> object:
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(
            f"setting {name} in {source}: {raw!r} is not a valid {kind.__name__}"
        ) from exc
