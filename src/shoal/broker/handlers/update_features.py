"""UpdateFeatures (57): change finalized feature levels (``kafka-features upgrade|downgrade``).

shoal's features are fixed at one level each (see :mod:`shoal.broker.features`), so the only
update it can apply is one to the level a feature already has, which Kafka too accepts as a
no-op, whatever the upgrade type. Anything else fails the whole request with
INVALID_UPDATE_VERSION and the reason, as Kafka reports a refused update:

- an upgrade type other than 1 (upgrade), 2 (safe downgrade) and 3 (unsafe downgrade), v1+;
- a feature shoal does not have;
- any other level, including a level below 1 (which asks to delete the feature).

v0 and v1 list each feature's result after a success, and none after a failure; v2 lists none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.broker.features import broker_features
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

UPGRADE_TYPES: Final = {1: "UPGRADE", 2: "SAFE_DOWNGRADE", 3: "UNSAFE_DOWNGRADE"}
DEFAULT_UPGRADE_TYPE: Final = 1
"""v0 has no upgrade type; its AllowDowngrade flag does not matter when no level may change."""


class _FeatureUpdate(Protocol):
    """upgrade_type (v1+) is read with getattr."""

    feature: str
    max_version_level: int


class _UpdateFeaturesRequest(Protocol):
    feature_updates: Sequence[_FeatureUpdate]


async def handle_update_features(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _UpdateFeaturesRequest)
    levels = {
        f.name: f.level for f in broker_features(broker.apis, broker.config.transaction_version)
    }
    answer: dict[str, Any] = {
        "throttle_time": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "results": [],
    }
    if not broker.authorize_cluster(ctx, AclOperation.ALTER):
        denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        answer.update(error_code=denied, error_message=denied.message)
        return response_for(header.api_key, header.api_version, answer)
    for update in body.feature_updates:
        name, level = str(update.feature), int(update.max_version_level)
        upgrade_type = int(getattr(update, "upgrade_type", DEFAULT_UPGRADE_TYPE))
        reason = _refusal(broker, levels, name, level, upgrade_type)
        if reason is not None:
            answer.update(
                error_code=ErrorCode.INVALID_UPDATE_VERSION,
                error_message="The update failed for all features since the following feature "
                f"had an error: Invalid update version {level} for feature {name}. {reason}",
                results=[],
            )
            break
        answer["results"].append({"feature": name, "error_code": ErrorCode.NONE})
    return response_for(header.api_key, header.api_version, answer)


def _refusal(
    broker: Broker, levels: dict[str, int], name: str, level: int, upgrade_type: int
) -> str | None:
    """Why the update cannot be applied, or None when it asks for the level already in force."""
    if upgrade_type not in UPGRADE_TYPES:
        return "The controller does not support the given upgrade type."
    node = broker.config.node_id
    if name not in levels:
        supported = ", ".join(f"{n} {v}" for n, v in sorted(levels.items()))
        return f"Local controller {node} does not support this feature (shoal has {supported})."
    if level != levels[name]:
        return (
            f"Local controller {node} only supports version {levels[name]}: shoal's feature "
            "levels are fixed."
        )
    return None
