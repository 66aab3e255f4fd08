"""DescribeConfigs (32): the configs of topics and of this broker, with where each value comes from.

A topic config's value is its override (source TOPIC_CONFIG) or else its broker synonyms' (see
:mod:`shoal.broker.broker_configs`): dynamic for this broker, dynamic cluster-wide, static,
default. With ``include_synonyms`` each entry lists those candidates in that order of
precedence, as Kafka does. The BROKER resource named by this broker's id lists every broker
config; named "" it lists the cluster-wide dynamic ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.broker.broker_configs import (
    BROKER_CONFIGS,
    ConfigLevels,
    ConfigSource,
    Synonym,
)
from shoal.broker.handlers.config_authorization import config_refusal
from shoal.broker.topic_configs import TOPIC_CONFIGS, ConfigError, ConfigType
from shoal.broker.topics import TopicError, check_topic_name
from shoal.coordinator.group_config import GroupConfig
from shoal.coordinator.group_configs import GROUP_CONFIG_KEYS
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

RESOURCE_TOPIC: Final = 2
RESOURCE_BROKER: Final = 4
RESOURCE_GROUP: Final = 32
"""ConfigResource.Type ids; BROKER_LOGGER (8) and CLIENT_METRICS (16) are not served."""


_BROKER_ID: Final = re.compile(r"-?[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    name: str
    value: str | None
    type: ConfigType
    doc: str
    read_only: bool
    synonyms: tuple[Synonym, ...]
    """The candidate values, highest precedence first; the first is where ``value`` comes from."""

    @property
    def source(self) -> ConfigSource:
        return self.synonyms[0].source if self.synonyms else ConfigSource.DEFAULT_CONFIG


def topic_entries(levels: ConfigLevels, overrides: Mapping[str, str]) -> list[ConfigEntry]:
    """Every topic config of a topic with ``overrides``, by name."""
    entries = []
    for name in sorted(TOPIC_CONFIGS):
        key = TOPIC_CONFIGS[name]
        synonyms = levels.topic_synonyms(name)
        if name in overrides:
            value: str | None = overrides[name]
            synonyms.insert(0, Synonym(name, value, ConfigSource.TOPIC_CONFIG))
        else:
            value = levels.topic_default(name)
        if value is None:
            value = key.default
        entries.append(ConfigEntry(name, value, key.check.type, key.doc, False, tuple(synonyms)))
    return entries


def broker_entries(levels: ConfigLevels, *, cluster: bool) -> list[ConfigEntry]:
    """This broker's configs by name; with ``cluster``, only the cluster-wide dynamic ones,
    each with only its cluster-wide synonyms (as Kafka lists the "" resource)."""
    names = sorted(levels.cluster) if cluster else sorted(BROKER_CONFIGS)
    entries = []
    for name in names:
        key = BROKER_CONFIGS[name]
        synonyms = levels.broker_synonyms(name)
        if cluster:
            cluster_wide = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
            synonyms = [s for s in synonyms if s.source is cluster_wide]
            value: str | None = levels.cluster[name]
        else:
            value = levels.value(name)
        entries.append(
            ConfigEntry(name, value, key.type, key.doc, not key.dynamic, tuple(synonyms))
        )
    return entries


def check_broker_resource(broker: Broker, name: str) -> None:
    """A BROKER resource names this broker's id, or is empty for the cluster-wide defaults."""
    if name == "":
        return
    node = broker.config.node_id
    if not _BROKER_ID.fullmatch(name):
        raise ConfigError(f"broker id must be an integer, not {name!r}", ErrorCode.INVALID_REQUEST)
    if int(name) != node:
        raise ConfigError(
            f"unexpected broker id {name}: this is broker {node}, the only one (or use an "
            "empty name for the cluster-wide defaults)",
            ErrorCode.INVALID_REQUEST,
        )


def unsupported_resource(resource_type: int) -> ConfigError:
    return ConfigError(
        f"shoal serves configs of topics ({RESOURCE_TOPIC}), brokers ({RESOURCE_BROKER}) and "
        f"groups ({RESOURCE_GROUP}), not of resource type {resource_type}",
        ErrorCode.INVALID_REQUEST,
    )


class _DescribedResource(Protocol):
    resource_type: int
    resource_name: str
    configuration_keys: Sequence[str] | None


class _DescribeConfigsRequest(Protocol):
    """include_synonyms (v1+) and include_documentation (v3+) are read with getattr."""

    resources: Sequence[_DescribedResource]


async def handle_describe_configs(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _DescribeConfigsRequest)
    synonyms = bool(getattr(body, "include_synonyms", False))
    documentation = bool(getattr(body, "include_documentation", False))
    results = []
    for resource in body.resources:
        kind, name = int(resource.resource_type), str(resource.resource_name)
        refusal = config_refusal(broker, ctx, AclOperation.DESCRIBE_CONFIGS, kind, name)
        if refusal is None:
            results.append(_describe(broker, resource, synonyms, documentation))
            continue
        results.append(
            {
                "resource_type": kind,
                "resource_name": name,
                "error_code": refusal,
                "error_message": refusal.message,
                "configs": [],
            }
        )
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "results": results}
    )


def _describe(
    broker: Broker, resource: _DescribedResource, synonyms: bool, documentation: bool
) -> dict[str, Any]:
    resource_type, name = int(resource.resource_type), str(resource.resource_name)
    result: dict[str, Any] = {
        "resource_type": resource_type,
        "resource_name": name,
        "error_code": 0,
        "error_message": None,
        "configs": [],
    }
    try:
        entries = _entries(broker, resource_type, name)
    except (ConfigError, TopicError) as exc:
        return {**result, "error_code": exc.error_code, "error_message": str(exc)}
    # Kafka treats an empty key list like a null one: every config.
    wanted = set(resource.configuration_keys or ())
    result["configs"] = [
        _wire(entry, synonyms, documentation)
        for entry in entries
        if not wanted or entry.name in wanted
    ]
    return result


def _entries(broker: Broker, resource_type: int, name: str) -> list[ConfigEntry]:
    if resource_type == RESOURCE_TOPIC:
        check_topic_name(name)
        topic = broker.topics.get(name)
        if topic is None:
            raise TopicError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        return topic_entries(broker.config_levels(), topic.configs)
    if resource_type == RESOURCE_BROKER:
        check_broker_resource(broker, name)
        return broker_entries(broker.config_levels(), cluster=name == "")
    if resource_type == RESOURCE_GROUP:
        if not name:
            raise ConfigError("Group name must not be empty", ErrorCode.INVALID_REQUEST)
        return group_entries(broker.groups.group_configs(name), broker.groups.base_config)
    raise unsupported_resource(resource_type)


def group_entries(overrides: Mapping[str, str], base: GroupConfig) -> list[ConfigEntry]:
    """Every group config of a group with ``overrides`` (issue 16, slice K)."""
    entries = []
    for name, key in sorted(GROUP_CONFIG_KEYS.items()):
        default = key.default(base)
        kafka_default = key.default(GroupConfig())
        source = (
            ConfigSource.DEFAULT_CONFIG
            if default == kafka_default
            else ConfigSource.STATIC_BROKER_CONFIG
        )
        # A config with no broker setting (share.auto.offset.reset) has no broker synonym.
        synonyms = [Synonym(key.broker_name, str(default), source)] if key.broker_name else []
        if name in overrides:
            synonyms.insert(0, Synonym(name, overrides[name], ConfigSource.GROUP_CONFIG))
        kind = ConfigType.INT if key.text is None else ConfigType.STRING
        value = synonyms[0].value if synonyms else str(default)
        entries.append(ConfigEntry(name, value, kind, key.doc, False, tuple(synonyms)))
    return entries


def _wire(entry: ConfigEntry, synonyms: bool, documentation: bool) -> dict[str, Any]:
    return {
        "name": entry.name,
        "value": entry.value,
        "read_only": entry.read_only,
        "config_source": int(entry.source),
        "is_sensitive": False,
        "synonyms": [
            {"name": s.name, "value": s.value, "source": int(s.source)} for s in entry.synonyms
        ]
        if synonyms
        else [],
        "config_type": int(entry.type),
        "documentation": entry.doc if documentation else None,
    }
