"""An authorizer-enabled broker called in-process, as the server calls it, with a chosen
principal: for the ACL matrix and the ACL API tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.context import RequestContext
from shoal.broker.handlers import HANDLERS
from shoal.coordinator.group_config import GroupConfig
from shoal.protocol import Request, RequestHeader
from shoal.protocol._kio import request_class
from shoal.protocol.build import build
from shoal.records import SimpleRecord, build_batch
from shoal.security.acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    PatternType,
    PermissionType,
    ResourceType,
)
from shoal.security.acl_authorizer import AuthorizerConfig
from shoal.storage import LogManager
from shoal.testing.responses import as_client_reads
from tests.broker.acl.matrix import CLIENT_HOST, SUPER_USER, Acl, Case, TopicIdOf

DEFAULT = AuthorizerConfig()


class AclHarness:
    def __init__(self, data_dir: Path, config: AuthorizerConfig | None = DEFAULT) -> None:
        self.data_dir = data_dir
        self.config = config
        self.logs: LogManager | None = None
        self.broker: Broker | None = None

    def start(self) -> Broker:
        self.logs = LogManager.open(str(self.data_dir))
        # No initial rebalance delay, as the Kafka peer runs: a JoinGroup answers at once.
        settings = BrokerSettings(
            authorizer=self.config, group=GroupConfig(initial_rebalance_delay_ms=0)
        )
        self.broker = Broker(settings, self.logs, handlers=HANDLERS)
        return self.broker

    def stop(self) -> None:
        if self.logs is not None:
            self.logs.close()
        self.logs = self.broker = None

    def restart(self) -> Broker:
        self.stop()
        return self.start()

    def add(self, *acls: Acl) -> None:
        """ACLs added straight to the broker (as a super user would)."""
        assert self.broker is not None and self.broker.acls is not None
        outcomes = self.broker.acls.create([binding(a) for a in acls])
        assert all(o.error_code == 0 for o in outcomes), outcomes

    def only(self, *acls: Acl) -> None:
        """Make ``acls`` the broker's whole ACL set (every other one deleted first): for one
        broker that serves many variants in turn, as the Kafka peer of the matrix does."""
        assert self.broker is not None and self.broker.acls is not None
        outcomes = self.broker.acls.delete([AclBindingFilter()])
        assert all(o.error_code == 0 for o in outcomes), outcomes
        self.add(*acls)
        assert set(self.broker.acls.describe(AclBindingFilter())) == {binding(a) for a in acls}

    def call(
        self,
        api_key: int,
        version: int,
        values: dict[str, Any],
        *,
        principal: str,
        host: str = CLIENT_HOST,
    ) -> Any:
        assert self.broker is not None
        body = build(request_class(api_key, version), with_topic_ids(values, self.topic_id))
        request = Request(RequestHeader(api_key, version, 1, "acl-test"), body)
        ctx = RequestContext(
            client_id="acl-test", client_host=host, client_port=1, principal=principal
        )
        return as_client_reads(asyncio.run(self.broker.handle(ctx, request)), api_key, version)

    def topic_id(self, name: str) -> uuid.UUID:
        assert self.broker is not None
        topic = self.broker.topics.get(name)
        assert topic is not None, name
        return topic.topic_id


def binding(acl: Acl) -> AclBinding:
    return AclBinding(
        resource_type=ResourceType[acl.resource_type],
        resource_name=acl.name,
        pattern_type=PatternType[acl.pattern_type],
        principal=acl.principal,
        host=acl.host,
        operation=AclOperation[acl.operation],
        permission_type=PermissionType[acl.permission],
    )


def with_batch(values: Any) -> Any:
    """The matrix's placeholder "BATCH" replaced by a real record batch."""
    if values == "BATCH":
        return build_batch([SimpleRecord(value=b"v")], base_timestamp=1_700_000_000_000)
    if isinstance(values, dict):
        return {k: with_batch(v) for k, v in values.items()}
    if isinstance(values, list):
        return [with_batch(v) for v in values]
    return values


def with_topic_ids(values: Any, topic_id: Callable[[str], uuid.UUID]) -> Any:
    """The matrix's :class:`TopicIdOf` placeholders replaced by the ids ``topic_id`` gives."""
    if isinstance(values, TopicIdOf):
        return topic_id(values.name)
    if isinstance(values, dict):
        return {k: with_topic_ids(v, topic_id) for k, v in values.items()}
    if isinstance(values, list):
        return [with_topic_ids(v, topic_id) for v in values]
    return values


def run_setup(harness: AclHarness, case: Case) -> None:
    for api_key, version, values in case.setup:
        harness.call(api_key, version, values, principal=SUPER_USER)
