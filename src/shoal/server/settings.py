"""Broker process settings: defaults, then a TOML config file, then SHOAL_* environment
variables, then command-line flags (each overriding the one before)."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final

from shoal.broker.broker_settings import BrokerConfig
from shoal.coordinator.group_config import GroupConfig
from shoal.storage import FlushPolicy, LogConfig


class SettingsError(ValueError):
    """A setting with a bad name or value; the message says which and what is expected."""


NODE_ID_MAX: Final = 2**31 - 1
"""node.id is an int32 on the wire (Metadata, FindCoordinator, DescribeCluster)."""
WILDCARD_HOSTS: Final = frozenset({"0.0.0.0", "::"})  # noqa: S104 - names them, binds nothing
HOSTNAME_LENGTH_MAX: Final = 253
"""The longest DNS name."""
_HOSTNAME: Final = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
"""Letters, digits, '-', '.' and '_' (container names often have one), no dot at either end."""


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: str = "./shoal-data"
    kafka_listen: str = "127.0.0.1:9092"
    http_listen: str = "127.0.0.1:8080"
    log_level: str = "info"
    log_format: str = "text"
    flush_policy: str = "sync"
    auto_create_topics: bool = True
    num_partitions: int = 1
    message_max_bytes: int = BrokerConfig().message_max_bytes
    retention_check_interval_s: float = 300.0
    group_initial_rebalance_delay_ms: int = GroupConfig().initial_rebalance_delay_ms
    group_min_session_timeout_ms: int = GroupConfig().min_session_timeout_ms
    node_id: int = BrokerConfig().node_id
    """node.id: the broker id clients see in Metadata, FindCoordinator, DescribeCluster."""
    advertised_listener: str = ""
    """HOST:PORT clients are told to connect to (Kafka's advertised.listeners); empty: the
    kafka_listen address, which must then not be a wildcard."""

    # -- SASL (issue 13, SASL slice): Kafka's names, dots as underscores ---------------------
    kafka_listener_protocol: str = "PLAINTEXT"
    """TEMPORARY (replaced by listener_security_protocol_map when listeners land): PLAINTEXT
    or SASL_PLAINTEXT, the security protocol of the one Kafka listener."""
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
    sasl_oauthbearer_expected_issuer: str = ""
    """When set, a token's iss must be exactly this."""
    sasl_oauthbearer_expected_audience: str = ""
    """Comma-separated; when set, a token's aud must name one of them."""
    sasl_oauthbearer_sub_claim_name: str = "sub"
    """The claim holding the principal name."""
    sasl_oauthbearer_scope_claim_name: str = "scope"
    sasl_oauthbearer_required_scopes: str = ""
    """shoal's: comma-separated scopes every token must grant (none when empty)."""
    sasl_oauthbearer_clock_skew_seconds: int = 30
    sasl_oauthbearer_allow_unsecured: bool = False
    """shoal's: accept unsigned (alg none) tokens, as Kafka's unsecured validator does. For
    tests only: anyone can then log in as anyone."""

    def broker_config(self, bound_port: int | None = None) -> BrokerConfig:
        """The broker's settings. ``bound_port`` is the port the Kafka listener is bound to,
        once known: with kafka_listen's port 0 only the bound socket tells which port clients
        must be told (unless advertised_listener names the address)."""
        host, port = parse_listen(self.kafka_listen)
        if not 0 <= self.node_id <= NODE_ID_MAX:
            raise SettingsError(f"node_id must be between 0 and {NODE_ID_MAX}, not {self.node_id}")
        advertised_host, advertised_port = self.advertised_address(
            host, port if bound_port is None else bound_port
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
        return BrokerConfig(
            node_id=self.node_id,
            advertised_host=advertised_host,
            advertised_port=advertised_port,
            auto_create_topics=self.auto_create_topics,
            num_partitions=self.num_partitions,
            message_max_bytes=self.message_max_bytes,
            log=LogConfig(flush_policy=policy),
            group=GroupConfig(
                initial_rebalance_delay_ms=self.group_initial_rebalance_delay_ms,
                min_session_timeout_ms=self.group_min_session_timeout_ms,
            ),
        )

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
            f"advertised_listener {value!r}: give HOST:PORT without a listener name (shoal has "
            f"one plaintext listener), {example}"
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
