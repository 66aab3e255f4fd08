"""IncrementalAlterConfigs (44): SET, DELETE, APPEND or SUBTRACT single topic configs, keeping
the others (or only check, with validate_only). Each resource changes wholly or not at all."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from shoal.broker.configs import ConfigError, ConfigType, topic_config_key, validate_topic_configs
from shoal.broker.handlers.alter_configs import answer_alter, check_unique
from shoal.broker.handlers.registry import handles
from shoal.protocol import ApiKey, ErrorCode, Request

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


@handles(ApiKey.INCREMENTAL_ALTER_CONFIGS)
async def handle_incremental_alter_configs(
    broker: Broker, ctx: RequestContext, request: Request
) -> Any:
    return answer_alter(broker, request, apply_operations)


def apply_operations(current: Mapping[str, str], entries: Any) -> dict[str, str]:
    check_unique(str(entry.name) for entry in entries)
    configs = dict(current)
    for entry in entries:
        name, value = str(entry.name), entry.value
        op = _operation(name, int(entry.config_operation))
        # Kafka lets DELETE (and SET to null) name a config that is not set, or not known.
        if op is AlterOp.DELETE or (op is AlterOp.SET and value is None):
            configs.pop(name, None)
            continue
        key = topic_config_key(name)
        if value is None:
            raise ConfigError(f"{op.name} of {name} needs a value", ErrorCode.INVALID_REQUEST)
        if op is AlterOp.SET:
            configs[name] = value
            continue
        if key.check.type is not ConfigType.LIST:
            raise ConfigError(
                f"cannot {op.name} {name}: only list configs such as cleanup.policy take "
                "APPEND and SUBTRACT; use SET"
            )
        items = [item for item in configs.get(name, key.default).split(",") if item]
        changed = [item.strip() for item in value.split(",") if item.strip()]
        if op is AlterOp.APPEND:
            items += [item for item in changed if item not in items]
        else:
            items = [item for item in items if item not in changed]
        configs[name] = ",".join(items)
    return validate_topic_configs(configs)


def _operation(name: str, code: int) -> AlterOp:
    try:
        return AlterOp(code)
    except ValueError:
        raise ConfigError(
            f"unknown operation {code} on {name}: use SET (0), DELETE (1), APPEND (2) or "
            "SUBTRACT (3)",
            ErrorCode.INVALID_REQUEST,
        ) from None
