"""ListConfigResources (74, KIP-1142; ListClientMetricsResources before Kafka 4.1): the config
resources that exist, of the types asked for.

- v0 (ListClientMetricsResources) lists client-metrics subscriptions only (KIP-714). shoal has
  none: it collects no client metrics.
- v1 lists the types asked for, or every type Kafka lists when the list is empty: topics (2),
  this broker (4, by node id), broker loggers (8), client-metrics subscriptions (16) and groups
  with config overrides (32). shoal serves configs of topics, of the broker and of groups, so it
  has no logger or subscription config resources to list.
- A type outside those five: UNSUPPORTED_VERSION, with nothing listed, as Kafka answers.

Topics are those DescribeConfigs can describe: the user topics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

TOPIC: Final = 2
BROKER: Final = 4
BROKER_LOGGER: Final = 8
CLIENT_METRICS: Final = 16
GROUP: Final = 32
LISTED_TYPES: Final = (TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP)
"""The ConfigResource.Type ids Kafka 4.4 lists; an empty request means all of them."""


class _ByType(Protocol):
    """v1+; v0 has no field."""

    resource_types: Sequence[int]


async def handle_list_config_resources(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header = request.header
    answer: dict[str, Any] = {"throttle_time": 0, "error_code": ErrorCode.NONE}
    if not broker.authorize_cluster(ctx, AclOperation.DESCRIBE_CONFIGS):
        answer.update(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, config_resources=[])
        return response_for(header.api_key, header.api_version, answer)
    if header.api_version == 0:
        answer["config_resources"] = []  # client-metrics subscriptions: shoal has none
        return response_for(header.api_key, header.api_version, answer)
    asked = request_body(request.body, _ByType).resource_types
    types = {int(t) for t in asked} or set(LISTED_TYPES)
    if not types <= set(LISTED_TYPES):
        answer.update(error_code=ErrorCode.UNSUPPORTED_VERSION, config_resources=[])
        return response_for(header.api_key, header.api_version, answer)
    resources: list[dict[str, Any]] = []
    if TOPIC in types:
        names = sorted(topic.name for topic in broker.topics)
        resources += [{"resource_name": name, "resource_type": TOPIC} for name in names]
    if BROKER in types:
        resources.append({"resource_name": str(broker.config.node_id), "resource_type": BROKER})
    if GROUP in types:
        # Groups with config overrides (KIP-848's GROUP resource, issue 16 slice K).
        names = broker.groups.groups_with_configs()
        resources += [{"resource_name": name, "resource_type": GROUP} for name in names]
    answer["config_resources"] = resources
    return response_for(header.api_key, header.api_version, answer)
