"""AlterConfigs (33): replace the whole override set of topics, or a whole level of dynamic broker
configs (this broker's, or the cluster-wide one named ""), or only check it, with validate_only.
A topic config left out of the request, or sent with a null value, goes back to the broker's
default; a broker config left out goes back to the next level's value.

The resource handling here is shared with IncrementalAlterConfigs, which differs only in how
the new override set is computed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from shoal.broker.handlers.config_authorization import config_refusal
from shoal.broker.handlers.describe_configs import (
    RESOURCE_BROKER,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    check_broker_resource,
    unsupported_resource,
)
from shoal.broker.topic_configs import ConfigError, validate_topic_configs
from shoal.broker.topics import TopicError, check_topic_name
from shoal.coordinator.group_configs import GroupConfigError
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation
from shoal.storage import StorageError

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

log = logging.getLogger(__name__)


class ConfigValue(Protocol):
    """A config entry of either request (IncrementalAlterConfigs' also has an operation)."""

    name: str
    value: str | None


class _Resource(Protocol):
    resource_type: int
    resource_name: str
    configs: Sequence[ConfigValue]


class _AlterRequest(Protocol):
    """AlterConfigs and IncrementalAlterConfigs requests alike."""

    resources: Sequence[_Resource]
    validate_only: bool


NewConfigs = Callable[[Mapping[str, str], Sequence[ConfigValue]], dict[str, str]]
"""A topic's new override set (canonical) from its current one and the request's entries;
raises :class:`ConfigError` for what Kafka would refuse."""


async def handle_alter_configs(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    return answer_alter(broker, ctx, request, replace_all, replace_broker_level)


def replace_all(current: Mapping[str, str], entries: Sequence[ConfigValue]) -> dict[str, str]:
    check_unique(str(entry.name) for entry in entries)
    return validate_topic_configs({str(e.name): e.value for e in entries if e.value is not None})


def replace_broker_level(
    current: Mapping[str, str], entries: Sequence[ConfigValue]
) -> dict[str, str]:
    """A dynamic broker level's new set: the request's configs (checked when it is set)."""
    check_unique(str(entry.name) for entry in entries)
    check_no_nulls(str(entry.name) for entry in entries if entry.value is None)
    return {str(entry.name): str(entry.value) for entry in entries}


def check_no_nulls(names: Iterable[str]) -> None:
    """Kafka refuses a null value for a broker config (DELETE removes one instead)."""
    nulls = list(names)
    if nulls:
        raise ConfigError(
            "Null value not supported for : " + ", ".join(nulls), ErrorCode.INVALID_REQUEST
        )


def check_unique(names: Iterable[str]) -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise ConfigError(
            f"configs named more than once: {', '.join(repeated)}", ErrorCode.INVALID_REQUEST
        )


def answer_alter(
    broker: Broker,
    ctx: RequestContext,
    request: Request,
    new_configs: NewConfigs,
    new_broker_configs: NewConfigs,
    new_group_configs: NewConfigs | None = None,
) -> ResponseBody:
    """Alter every resource of an AlterConfigs or IncrementalAlterConfigs request on its own
    (GROUP resources only where ``new_group_configs`` is given: IncrementalAlterConfigs)."""
    header, body = request.header, request_body(request.body, _AlterRequest)
    resources = Counter((int(r.resource_type), str(r.resource_name)) for r in body.resources)
    responses = []
    for resource in body.resources:
        kind, name = int(resource.resource_type), str(resource.resource_name)
        code: int = ErrorCode.NONE
        message: str | None = None
        try:
            if resources[(kind, name)] > 1:
                raise ConfigError("resource named more than once", ErrorCode.INVALID_REQUEST)
            refusal = config_refusal(broker, ctx, AclOperation.ALTER_CONFIGS, kind, name)
            if refusal is not None:
                raise ConfigError(refusal.message, refusal)
            if kind == RESOURCE_GROUP and new_group_configs is not None:
                _alter_group(broker, name, resource.configs, new_group_configs, body.validate_only)
            else:
                changes = new_configs if kind != RESOURCE_BROKER else new_broker_configs
                _alter(broker, kind, name, resource.configs, changes, bool(body.validate_only))
        except (ConfigError, TopicError) as exc:
            code, message = exc.error_code, str(exc)
        except GroupConfigError as exc:
            code, message = ErrorCode.INVALID_CONFIG, str(exc)
        except StorageError as exc:  # the offsets log or a failed directory refused; no change
            log.error("altering configs of %s failed: %s", name, exc)
            code, message = ErrorCode.KAFKA_STORAGE_ERROR, f"saving the configs failed: {exc}"
        except OSError as exc:  # saving topics.json or broker-configs.json failed; no change
            log.error("altering configs of %s failed: %s", name, exc)
            code, message = ErrorCode.KAFKA_STORAGE_ERROR, f"saving the configs failed: {exc}"
        responses.append(
            {
                "resource_type": kind,
                "resource_name": name,
                "error_code": code,
                "error_message": message,
            }
        )
    return response_for(
        header.api_key, header.api_version, {"throttle_time": 0, "responses": responses}
    )


def _alter_group(
    broker: Broker,
    name: str,
    entries: Sequence[ConfigValue],
    new_configs: NewConfigs,
    validate_only: bool,
) -> None:
    """A group's configs (issue 16, slice K), kept with the group in __consumer_offsets."""
    if not name:
        raise ConfigError("Default group resources are not allowed.", ErrorCode.INVALID_REQUEST)
    configs = new_configs(broker.groups.group_configs(name), entries)
    broker.groups.set_group_configs(name, configs, validate_only=validate_only)


def _alter(
    broker: Broker,
    kind: int,
    name: str,
    entries: Sequence[ConfigValue],
    new_configs: NewConfigs,
    validate_only: bool,
) -> None:
    if kind == RESOURCE_TOPIC:
        check_topic_name(name)
        topic = broker.topics.get(name)
        configs = new_configs(topic.configs if topic is not None else {}, entries)
        broker.set_topic_configs(name, configs, validate_only=validate_only)
    elif kind == RESOURCE_BROKER:
        check_broker_resource(broker, name)
        cluster = name == ""
        dynamic = broker.dynamic_configs
        current = dynamic.cluster if cluster else dynamic.broker(broker.config.node_id)
        configs = new_configs(current, entries)
        broker.set_broker_configs(cluster, configs, validate_only=validate_only)
    else:
        raise unsupported_resource(kind)
