"""The registry's subjects under the broker's ACLs: one set of rules for a topic and its schemas.

A subject is governed by its topic's ACLs (``orders-value`` and ``orders-key`` by topic
``orders``; see :func:`shoal.registry.access.topic_of`): whoever may Describe the topic (which
Read and Write imply) may read its schemas, whoever may Write it may register and delete them.
The registry's global config and mode change only with AlterConfigs on the cluster; reading
them, and schemas by id, is open to every principal the HTTP face let in. Without an authorizer
the broker allows everything, and so does this.
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.broker.broker import Broker
from shoal.broker.context import RequestContext
from shoal.registry.access import Action, topic_of
from shoal.security.acl import AclOperation, ResourceType


class BrokerSubjectAccess:
    def __init__(self, broker: Callable[[], Broker | None]) -> None:
        self._broker = broker

    def may(self, principal: str, host: str, action: Action, subject: str | None) -> bool:
        broker = self._broker()
        if broker is None:
            return False  # not started: nothing is served yet
        ctx = RequestContext(None, host, 0, principal=principal)
        if subject is None:
            if action is Action.READ:
                return True
            return broker.authorize_cluster(ctx, AclOperation.ALTER_CONFIGS)
        operation = AclOperation.DESCRIBE if action is Action.READ else AclOperation.WRITE
        return broker.authorize(ctx, operation, ResourceType.TOPIC, topic_of(subject))
