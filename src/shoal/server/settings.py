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
from shoal.security.acl import AclError
from shoal.security.acl_authorizer import AuthorizerConfig, parse_super_users
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
STANDARD_AUTHORIZER: Final = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
AUTHORIZER_CLASS_NAMES: Final = frozenset({STANDARD_AUTHORIZER, "standard"})


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
    # -- ACLs (issue 13, slice A): Kafka's authorizer.class.name, super.users and
    # allow.everyone.if.no.acl.found --
    authorizer_class_name: str = ""
    """Kafka's StandardAuthorizer (org.apache.kafka.metadata.authorizer.StandardAuthorizer, or
    ``standard``) authorizes every request against the ACLs; empty: no authorizer."""
    super_users: str = ""
    """Principals that may do anything, separated by semicolons: User:admin;User:ops"""
    allow_everyone_if_no_acl_found: bool = False

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
            authorizer=self.authorizer_config(),
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
