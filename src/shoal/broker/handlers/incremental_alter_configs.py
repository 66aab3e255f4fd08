"""IncrementalAlterConfigs (44): SET, DELETE, APPEND or SUBTRACT single configs of a topic or of
the dynamic broker configs, keeping the others (or only check, with validate_only). Each resource
changes wholly or not at all."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from shoal.broker.broker_configs import BROKER_CONFIGS
from shoal.broker.handlers.alter_configs import (
    ConfigValue,
    answer_alter,
    check_no_nulls,
    check_unique,
)
from shoal.broker.topic_configs import (
    ConfigError,
    ConfigType,
    topic_config_key,
    validate_topic_configs,
)
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.shape import narrow

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


class AlterOp(IntEnum):
    SET = 0
    DELETE = 1
    APPEND = 2
    """Add items to a list config (starting from its default when unset)."""
    SUBTRACT = 3
    """Remove items from a list config."""


class _Operation(Protocol):
    name: str
    value: str | None
    config_operation: int


async def handle_incremental_alter_configs(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    return answer_alter(
        broker, ctx, request, apply_operations, apply_broker_operations, apply_group_operations
    )


def apply_operations(current: Mapping[str, str], entries: Sequence[ConfigValue]) -> dict[str, str]:
    """A topic's new override set (canonical)."""
    check_unique(str(entry.name) for entry in entries)
    return validate_topic_configs(_apply(current, entries, _topic_list_start))


def apply_broker_operations(
    current: Mapping[str, str], entries: Sequence[ConfigValue]
) -> dict[str, str]:
    """A dynamic broker level's new set (checked when it is set, against the whole level)."""
    check_unique(str(entry.name) for entry in entries)
    deleting = int(AlterOp.DELETE)
    operations = [narrow(e, _Operation) for e in entries]
    check_no_nulls(
        str(e.name) for e in operations if e.value is None and e.config_operation != deleting
    )
    return _apply(current, entries, _broker_list_start)


def apply_group_operations(
    current: Mapping[str, str], entries: Sequence[ConfigValue]
) -> dict[str, str]:
    """A group's new override set, checked by the coordinator when it is set."""
    check_unique(str(entry.name) for entry in entries)
    return _apply(current, entries, _group_list_start)


def _group_list_start(name: str, op: AlterOp) -> str:
    if op in (AlterOp.APPEND, AlterOp.SUBTRACT):
        # Kafka's words: no group config is a list.
        raise ConfigError(
            f"Can't {op.name} to key {name} because its type is not LIST."
            if op is AlterOp.APPEND
            else f"Can't {op.name} from key {name} because its type is not LIST."
        )
    return ""


def _apply(
    current: Mapping[str, str],
    entries: Sequence[ConfigValue],
    list_start: Callable[[str, AlterOp], str],
) -> dict[str, str]:
    configs = dict(current)
    for entry in (narrow(e, _Operation) for e in entries):
        name, value = str(entry.name), entry.value
        op = _operation(name, int(entry.config_operation))
        # Kafka lets DELETE (and, for topics, SET to null) name a config that is not set, or
        # not known.
        if op is AlterOp.DELETE or (op is AlterOp.SET and value is None):
            configs.pop(name, None)
            continue
        start = list_start(name, op)
        if value is None:
            raise ConfigError(f"{op.name} of {name} needs a value", ErrorCode.INVALID_REQUEST)
        if op is AlterOp.SET:
            configs[name] = value
            continue
        items = [item for item in configs.get(name, start).split(",") if item]
        changed = [item.strip() for item in value.split(",") if item.strip()]
        if op is AlterOp.APPEND:
            items += [item for item in changed if item not in items]
        else:
            # Removing the last item leaves an empty list, which Kafka 4.4 keeps as "".
            items = [item for item in items if item not in changed]
        configs[name] = ",".join(items)
    return configs


def _topic_list_start(name: str, op: AlterOp) -> str:
    """The default of topic config ``name``, which APPEND and SUBTRACT start from."""
    key = topic_config_key(name)
    if op in (AlterOp.APPEND, AlterOp.SUBTRACT) and key.check.type is not ConfigType.LIST:
        raise ConfigError(
            f"cannot {op.name} {name}: only list configs such as cleanup.policy take "
            "APPEND and SUBTRACT; use SET"
        )
    return key.default


def _broker_list_start(name: str, op: AlterOp) -> str:
    """The default of broker config ``name``, which APPEND and SUBTRACT start from."""
    if op not in (AlterOp.APPEND, AlterOp.SUBTRACT):
        return ""  # SET: the name and value are checked with the whole level
    key = BROKER_CONFIGS.get(name)
    if key is None:
        raise ConfigError(f"Unknown config name: {name}")
    if key.type is not ConfigType.LIST:
        # Kafka's words, with the hint shoal adds for topic configs.
        raise ConfigError(
            f"Config value {op.name.lower()} is not allowed for config key: {name}; only list "
            "configs such as log.cleanup.policy take APPEND and SUBTRACT"
        )
    return key.default or ""


def _operation(name: str, code: int) -> AlterOp:
    try:
        return AlterOp(code)
    except ValueError:
        raise ConfigError(
            f"unknown operation {code} on {name}: use SET (0), DELETE (1), APPEND (2) or "
            "SUBTRACT (3)",
            ErrorCode.INVALID_REQUEST,
        ) from None
