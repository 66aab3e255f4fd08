"""The broker's settings as it starts (:class:`BrokerSettings`), typed and named after the Kafka
broker configs they mirror.

One of four modules about configs: this one holds what the process was started with;
:mod:`~shoal.broker.broker_configs` and :mod:`~shoal.broker.topic_configs` are the catalogues of
Kafka's named broker and topic configs (what DescribeConfigs and AlterConfigs speak);
:mod:`~shoal.broker.dynamic_config_store` keeps the broker configs set at runtime on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from shoal.coordinator.group_config import GroupConfig
from shoal.security.acl_authorizer import AuthorizerConfig
from shoal.security.quotas import QuotaSettings
from shoal.storage import LogConfig
from shoal.storage.cleaner_thread import CleanerSettings

DEFAULT_MESSAGE_MAX_BYTES: Final = 1_048_588
"""message.max.bytes: Kafka's default (1 MiB plus the batch overhead)."""


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    node_id: int = 1
    advertised_host: str = "127.0.0.1"
    advertised_port: int = 9092
    advertised_listeners: tuple[tuple[str, str, int], ...] = ()
    """(listener name, host, port) clients of each listener are told; a listener not here
    (or none at all, in tests building the broker directly) is told advertised_host:port."""
    cluster_id: str = "shoal-cluster"
    auto_create_topics: bool = True
    """auto.create.topics.enable: Metadata requests may create missing topics."""
    num_partitions: int = 1
    """num.partitions: partitions of an auto-created topic."""
    message_max_bytes: int = DEFAULT_MESSAGE_MAX_BYTES
    log: LogConfig = field(default_factory=LogConfig)
    """Defaults of every topic's log settings (topics override them)."""
    group: GroupConfig = field(default_factory=GroupConfig)
    """Consumer group coordinator settings (group.* and offsets.* broker configs)."""
    fetch_max_wait_ms_max: int = 30_000
    """A Fetch never parks longer than this, whatever max_wait it asks for."""

    def advertised_address(self, listener_name: str) -> tuple[str, int]:
        """The address clients of ``listener_name`` are told, as Kafka answers each client
        with the endpoint of the listener its request came in on."""
        for name, host, port in self.advertised_listeners:
            if name == listener_name:
                return host, port
        return self.advertised_host, self.advertised_port

    # -- ACLs (issue 13, slice A) --
    authorizer: AuthorizerConfig | None = None
    """authorizer.class.name set (with super.users and allow.everyone.if.no.acl.found): every
    request is authorized against the ACLs; None: no authorizer, everything is allowed and the
    ACL APIs answer SECURITY_DISABLED, as Kafka does."""
    quota: QuotaSettings = field(default_factory=QuotaSettings)
    """Client quota windows and the broker-wide connection creation rate (quota.window.*,
    max.connection.creation.rate)."""

    # -- transactions (issue 14, transactions slice) --
    transaction_max_timeout_ms: int = 900_000
    """transaction.max.timeout.ms: a producer's transaction.timeout.ms above it is refused
    (INVALID_TRANSACTION_TIMEOUT)."""
    transactional_id_expiration_ms: int = 604_800_000
    """transactional.id.expiration.ms: an id idle this long with no open transaction is
    forgotten."""
    transaction_version: int = 2
    """The ``transaction.version`` feature level (shoal.broker.features): 2 serves
    transactions V2 to the clients that read it; 1 or 0 keeps every client on the classic
    protocol."""

    # -- log compaction (issue 15, leftovers): the log.cleaner.* broker configs --
    cleaner: CleanerSettings = field(default_factory=CleanerSettings)
    """The log cleaner's settings, as DescribeConfigs of the BROKER resource reports them (the
    cleaner thread itself is started with the same values by the server)."""
