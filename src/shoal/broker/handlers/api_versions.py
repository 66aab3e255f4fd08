"""ApiVersions (18): what this broker serves, and (v3+) its feature flags, which is how Kafka's
admin clients describe features (``kafka-features describe``). Unsupported versions are answered
by the server in v0 format (KIP-511) before a handler is reached."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shoal.broker.features import FINALIZED_FEATURES_EPOCH, broker_features
from shoal.protocol import Request, ResponseBody, advertised_versions
from shoal.protocol.build import response_for

SUPPORTED_MIN_0_VERSION: Final = 4
"""The first ApiVersions version whose supported features may have a minimum of 0."""

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext


async def handle_api_versions(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header = request.header
    keys = [
        {"api_key": a.api_key, "min_version": a.min_version, "max_version": a.max_version}
        for a in advertised_versions(broker.apis)
    ]
    features = broker_features(broker.apis, broker.config.transaction_version)
    return response_for(
        header.api_key,
        header.api_version,
        {
            "error_code": 0,
            "api_keys": keys,
            "throttle_time": 0,
            # KAFKA-17011: v0-3 readers choke on a supported minimum of 0, so (as Kafka) v3
            # leaves such features out of the supported list; v4+ lists them all.
            "supported_features": [
                {"name": f.name, "min_version": f.min_level, "max_version": f.max_level}
                for f in features
                if f.min_level > 0 or header.api_version >= SUPPORTED_MIN_0_VERSION
            ],
            "finalized_features_epoch": FINALIZED_FEATURES_EPOCH,
            # As Kafka's ApiVersionsResponse: a feature finalized at 0 is not listed.
            "finalized_features": [
                {"name": f.name, "min_version_level": f.level, "max_version_level": f.level}
                for f in features
                if f.level > 0
            ],
        },
    )
