"""Broker process settings: defaults, then a TOML config file, then SHOAL_* environment
variables, then command-line flags (each overriding the one before)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from shoal.broker.config import BrokerConfig
from shoal.coordinator.group_config import GroupConfig
from shoal.storage import FlushPolicy, LogConfig


class SettingsError(ValueError):
    """A setting with a bad name or value; the message says which and what is expected."""


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

    def broker_config(self, advertised_port: int | None = None) -> BrokerConfig:
        host, port = parse_listen(self.kafka_listen)
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
            advertised_host=host if host not in ("0.0.0.0", "::", "") else "127.0.0.1",  # noqa: S104
            advertised_port=advertised_port if advertised_port is not None else port,
            auto_create_topics=self.auto_create_topics,
            num_partitions=self.num_partitions,
            message_max_bytes=self.message_max_bytes,
            log=LogConfig(flush_policy=policy),
            group=GroupConfig(
                initial_rebalance_delay_ms=self.group_initial_rebalance_delay_ms,
                min_session_timeout_ms=self.group_min_session_timeout_ms,
            ),
        )


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


def _coerce(name: str, raw: Any, kind: type, source: str) -> Any:
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
