"""The broker: topic metadata, partition logs and the dispatch of requests to handlers.

It knows no sockets: the server feeds it decoded requests and writes what it returns. It is
given its handler table (:data:`shoal.broker.handlers.HANDLERS`) rather than importing it: the
handlers are functions of the broker, so the broker importing them would make an import cycle.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeAlias

from shoal.broker.acls import BrokerAcls
from shoal.broker.authorized_operations import NOT_ASKED
from shoal.broker.broker_configs import (
    CLUSTER_SEED,
    ConfigLevels,
    cleaner_settings_with,
    static_configs,
    validate_dynamic,
)
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.context import RequestContext
from shoal.broker.dynamic_config_store import DynamicConfigStore
from shoal.broker.groups import GroupService
from shoal.broker.internal_topics import (
    KEPT_INTERNAL_TOPICS,
    OFFSETS_TOPIC_PARTITIONS,
    RESERVED_TOPICS,
    internal_topic_configs,
    reserved_name_message,
)
from shoal.broker.share_groups import SHARE_GROUP_APIS, ShareGroups
from shoal.broker.signals import AppendSignals
from shoal.broker.stats import BrokerStats
from shoal.broker.topic_configs import ConfigError
from shoal.broker.topics import Topic, TopicError, TopicStore, check_topic_name, log_config_for
from shoal.broker.transactions import TransactionService
from shoal.broker.unsupported import UnsupportedFeatures
from shoal.clock import SYSTEM_CLOCK, Clock
from shoal.coordinator.offsets_log import OFFSETS_TOPIC, offsets_log_config
from shoal.coordinator.producer_state import Duplicate, Rejected
from shoal.coordinator.producers import Producers
from shoal.coordinator.share_group import ShareGroupSettings
from shoal.coordinator.share_partition import SharePartitionSettings
from shoal.coordinator.txn_coordinator import TransactionCoordinator
from shoal.coordinator.txn_log import TXN_STATE_TOPIC
from shoal.invariant import invariant
from shoal.protocol import ApiVersionRange, ErrorCode, Request, ResponseBody, restrict_to
from shoal.protocol.frame_writer import FramedResponse
from shoal.records.header import BatchHeader
from shoal.security.acl import CLUSTER_NAME, AclOperation, ResourceType
from shoal.security.acl_authorizer import SUPPORTED_OPERATIONS
from shoal.security.quota_store import QuotaStore
from shoal.security.quotas import ClientQuotas
from shoal.security.scram_store import ScramCredentialStore
from shoal.storage import AppendInfo, LogConfig, LogManager, PartitionLog, StorageError
from shoal.storage.fs import FileSystem, OsFileSystem

log = logging.getLogger(__name__)

MAX_PARTITIONS_PER_TOPIC = 10_000
"""A bound on one CreateTopics/CreatePartitions: each partition is a directory and a file."""

HandlerResult: TypeAlias = ResponseBody | FramedResponse | None
"""A kio response message; a response the server frames itself (Fetch, Produce); or None when
no response is sent (Produce with acks=0)."""

Handler: TypeAlias = Callable[["Broker", RequestContext, Request], Awaitable[HandlerResult]]
"""The function that answers one API key (see :mod:`shoal.broker.handlers.table`)."""


class Broker:
    @property
    def config(self) -> BrokerSettings:
        """The settings the broker was built with, listeners' bound addresses included. Read
        only: the services below copy parts of it when built, so a field changed afterwards
        would reach some readers and not others (issue 18: give it in, never patch it)."""
        return self._config

    def __init__(
        self,
        config: BrokerSettings,
        logs: LogManager,
        *,
        handlers: Mapping[int, Handler],
        fs: FileSystem | None = None,
        clock: Clock = SYSTEM_CLOCK,
        begin_epochs: bool = True,
    ) -> None:
        """``begin_epochs=False``: the caller runs ``logs.begin_leader_epochs()`` itself before
        serving (app.py does, on a worker thread: two fsyncs per partition)."""
        self._config = config
        self.clock = clock
        self.logs = logs
        self.topics = TopicStore(fs or OsFileSystem(), logs.path, logs.health.check)
        self.dynamic_configs = DynamicConfigStore(
            fs or OsFileSystem(),
            logs.path,
            CLUSTER_SEED,
            lambda configs, cluster: validate_dynamic(configs, cluster=cluster),
        )
        self._topic_defaults = self.config_levels().dynamic_topic_defaults()
        self._apply_cleaner_configs()  # issue 15 leftovers: runtime log.cleaner.* kept on disk
        self.scram_credentials = ScramCredentialStore(fs or OsFileSystem(), logs.path)
        """SCRAM users (AlterUserScramCredentials); SASL listeners authenticate against it."""
        self.signals = AppendSignals()
        self.producers = Producers(fs or OsFileSystem(), logs, clock)
        self._snapshot_jobs: set[asyncio.Future[None]] = set()
        """Producer-state snapshots being written on worker threads (see :meth:`drain`)."""
        self.groups = GroupService(logs, config.log, clock, config.group, self.append)
        # KIP-848 subscriptions resolve against the topics (issue 16, slice K).
        self.groups.use_topics(lambda: {t.name: t.partitions for t in self.topics})
        # KIP-932 share groups (issue 16, slice K).
        self.share_groups = ShareGroups(
            clock,
            ShareGroupSettings(
                session_timeout_ms=config.group.share_session_timeout_ms,
                heartbeat_interval_ms=config.group.share_heartbeat_interval_ms,
            ),
            SharePartitionSettings(
                record_lock_duration_ms=config.group.share_record_lock_duration_ms,
                delivery_count_limit=config.group.share_delivery_count_limit,
            ),
        )
        self.share_groups.use_group_configs(self.groups.group_configs, self.groups.base_config)
        # Records a leaving share member gave back wake the fetches parked on them (slice Q).
        self.share_groups.wake = self.signals.notify
        self.unsupported = UnsupportedFeatures(clock)
        self.acls = (
            None
            if config.authorizer is None
            else BrokerAcls(fs or OsFileSystem(), logs.path, config.authorizer)
        )
        """The ACLs and their authorizer; None when no authorizer is configured."""
        self.stats = BrokerStats()
        self.quotas = ClientQuotas(QuotaStore(fs or OsFileSystem(), logs.path), config.quota, clock)
        """Client quota configs (durable) and the rates they limit; the server enforces them."""
        # Transactions (issue 14, transactions slice).
        self.transactions = TransactionService(
            TransactionCoordinator(
                clock,
                self.producers.ids.allocate,
                max_timeout_ms=config.transaction_max_timeout_ms,
                expiration_ms=config.transactional_id_expiration_ms,
            ),
            clock,
            logs,
            self.append,
            offsets_log_config(config.log, config.group),
        )
        self.transactions.on_offsets_marker(self.groups.end_txn_offsets)
        self._handlers = handlers
        """By API key; kept as given (not copied), so a test may wrap one in the table."""
        served = set(handlers.keys())
        if config.group.share_version < 1:  # share.version 0: no share groups (issue 16)
            served -= SHARE_GROUP_APIS
        self.apis: Mapping[int, ApiVersionRange] = restrict_to(served)
        self._ensure_logs()
        self._ensure_internal_topics()
        # Issue 19 (leader epochs, slice L): this start is a new leader epoch for every
        # partition, begun only now that every document loaded (a refused start changes no file).
        if begin_epochs:
            logs.begin_leader_epochs()

    def _ensure_logs(self) -> None:
        """Open or create every partition the metadata names (e.g. after a crash mid-create)."""
        offline = {(tp.topic, tp.partition) for tp in self.logs.offline}
        for topic in self.topics:
            if topic.internal:
                continue  # its log belongs to its coordinator, with that one's settings
            config = self.log_config(topic)
            for partition in range(topic.partitions):
                plog = self.logs.get(topic.name, partition)
                if plog is None:
                    if (topic.name, partition) not in offline:
                        self.logs.create(topic.name, partition, config, elect=True)  # issue 19
                else:
                    plog.update_config(config)

    async def handle(self, ctx: RequestContext, request: Request) -> HandlerResult:
        handler = self._handlers[int(request.header.api_key)]
        return await handler(self, ctx, request)

    def connection_closed(self, connection_id: str) -> None:
        """The server closed, or lost, client connection ``connection_id`` (after its
        requests ended): what was tied to it ends too, as Kafka's connection-disconnect
        listeners do: the share session it opened (issue 16, slice Q)."""
        self.share_groups.connection_closed(connection_id)

    # -- the one append operation -------------------------------------------------------

    def append(
        self,
        topic: str,
        partition: int,
        plog: PartitionLog,
        batch: bytes | bytearray,
        header: BatchHeader,
    ) -> AppendInfo | Duplicate | Rejected:
        """Write one validated batch to a partition: every writer (Produce, the group
        coordinator's offsets log) goes through here, so none can skip a step.

        Steps, with no await in between (no other append to the partition can slip in): the
        producer-state check; the append; recording it in the producer state; waking Fetch
        requests parked on the partition; and, when one is due, a producer-state snapshot
        started on a worker thread and tracked until :meth:`drain`. A retry of a batch already
        in the log returns :class:`Duplicate` and a refused batch :class:`Rejected` (nothing
        written); a failed write raises :class:`StorageError`.
        """
        try:
            verdict = self.producers.check(topic, partition, plog, header, batch)
        except StorageError as exc:
            return Rejected(
                ErrorCode(exc.kafka_error_code), f"could not load the producer state: {exc}"
            )
        if isinstance(verdict, (Duplicate, Rejected)):
            return verdict
        info = plog.append(batch, header)
        self.stats.appended(topic, header.size, header.record_count)  # metrics (issue 17)
        snapshot = self.producers.on_append(topic, partition, plog, header, info, batch)
        if snapshot is not None:
            # An fsync'd file write: off the event loop. The job logs its own failures.
            job = asyncio.get_running_loop().run_in_executor(None, snapshot.run)
            self._snapshot_jobs.add(job)
            job.add_done_callback(self._snapshot_jobs.discard)
        self.signals.notify(topic, partition)
        return info

    async def drain(self) -> None:
        """Finish the background work appends started: producer-state snapshots and the
        offsets log's snapshot. Call after the last request, before the logs close."""
        await self.groups.drain()
        await self.transactions.stop()
        await self.share_groups.writer.drain()  # share-group state files (issue 16, slice Q)
        if self._snapshot_jobs:
            await asyncio.gather(*self._snapshot_jobs, return_exceptions=True)

    @property
    def pending_snapshot_jobs(self) -> int:
        """Producer-state snapshots still being written (0 after :meth:`drain`)."""
        return len(self._snapshot_jobs)

    # -- topics -------------------------------------------------------------------------

    def log_config(self, topic: Topic) -> LogConfig:
        return self._log_config_with(topic.configs)

    def _log_config_with(self, overrides: Mapping[str, str]) -> LogConfig:
        """Storage settings of a topic with ``overrides``: they win over the dynamic broker
        configs, which win over the static ones (``self.config.log``)."""
        return log_config_for(self.config.log, {**self._topic_defaults, **overrides})

    def topic_setting(self, topic: Topic, name: str) -> str | None:
        """A topic config's value where the topic or a dynamic broker config sets it; None
        where the static broker settings decide (``self.config``)."""
        return topic.configs.get(name, self._topic_defaults.get(name))

    def partition(self, topic: str, partition: int) -> PartitionLog | None:
        if topic in RESERVED_TOPICS and self.topics.get(topic) is None:
            # The offsets log exists from the start, but to clients the topic does not until
            # it is registered (see shoal.broker.internal_topics).
            return None
        return self.logs.get(topic, partition)

    def topic_by_id(self, topic_id: uuid.UUID) -> Topic | None:
        return self.topics.by_id(topic_id)

    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str] | None = None,
        *,
        validate_only: bool = False,
    ) -> Topic | None:
        """Create a topic; raises :class:`TopicError` with the Kafka error to answer."""
        check_topic_name(name)
        if self.topics.get(name) is not None:
            raise TopicError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        if name in RESERVED_TOPICS:
            return self._create_internal(name, partitions, configs or {}, validate_only)
        if not 1 <= partitions <= MAX_PARTITIONS_PER_TOPIC:
            raise TopicError(
                ErrorCode.INVALID_PARTITIONS,
                f"number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}, "
                f"not {partitions}",
            )
        overrides = dict(configs or {})
        try:
            self._log_config_with(overrides)
        except (ValueError, AssertionError) as exc:
            raise TopicError(ErrorCode.INVALID_CONFIG, f"invalid topic config: {exc}") from exc
        if validate_only:
            return None
        topic = self.topics.add(name, partitions, overrides)
        config = self.log_config(topic)
        for partition in range(partitions):
            self.logs.create(name, partition, config)
        log.info("created topic %s with %d partitions", name, partitions)
        return topic

    def auto_create(self, name: str) -> Topic:
        if name in RESERVED_TOPICS:
            if name not in KEPT_INTERNAL_TOPICS:
                raise TopicError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, reserved_name_message(name))
            return self.ensure_internal_topic(name)
        topic = self.create_topic(name, self.config.num_partitions)
        if topic is None:  # only with validate_only, which auto-creation never sets
            raise RuntimeError("auto-creation of a topic returned no topic")
        return topic

    # -- internal topics ---------------------------------------------------------------

    def ensure_internal_topic(self, name: str) -> Topic:
        """Register one of the broker's own topics, so that clients see it from now on (as
        Kafka creates ``__consumer_offsets`` on the first FindCoordinator for a group)."""
        invariant(name in KEPT_INTERNAL_TOPICS, f"{name} is not an internal topic shoal keeps")
        topic = self.topics.get(name)
        if topic is None:
            topic = self.topics.add(
                name, OFFSETS_TOPIC_PARTITIONS, internal_topic_configs(self.config), internal=True
            )
            log.info("internal topic %s is in use: clients see it from now on", name)
        return topic

    def _ensure_internal_topics(self) -> None:
        # A data directory from before internal topics were registered: the offsets log says
        # whether a group was ever used.
        offsets = self.logs.get(OFFSETS_TOPIC, 0)
        used = offsets is not None and offsets.log_end_offset > 0
        if self.topics.get(OFFSETS_TOPIC) is None and used:
            self.ensure_internal_topic(OFFSETS_TOPIC)
        # Transactions (issue 14, transactions slice): the same for the transaction log.
        txn_state = self.logs.get(TXN_STATE_TOPIC, 0)
        if self.topics.get(TXN_STATE_TOPIC) is None and txn_state and txn_state.log_end_offset:
            self.ensure_internal_topic(TXN_STATE_TOPIC)
        # Their configs follow the broker's settings, which may have changed since.
        wanted = internal_topic_configs(self.config)
        for topic in self.topics:
            if topic.internal and topic.configs != wanted:
                self.topics.set_configs(topic.name, wanted)

    def _create_internal(
        self, name: str, partitions: int, configs: Mapping[str, str], validate_only: bool
    ) -> Topic | None:
        """CreateTopics of a reserved name. Kafka would create it with what was asked for;
        shoal creates only the topic it keeps, and only as its coordinator has it."""
        if name not in KEPT_INTERNAL_TOPICS:
            raise TopicError(ErrorCode.INVALID_REQUEST, reserved_name_message(name))
        if partitions != OFFSETS_TOPIC_PARTITIONS:
            raise TopicError(
                ErrorCode.INVALID_PARTITIONS,
                f"shoal keeps its internal topic {name} as {OFFSETS_TOPIC_PARTITIONS} "
                f"partition, not {partitions}",
            )
        if configs:
            raise TopicError(
                ErrorCode.INVALID_CONFIG,
                f"shoal sets the configs of its internal topic {name} itself",
            )
        return None if validate_only else self.ensure_internal_topic(name)

    # -- admin operations (DeleteTopics, CreatePartitions, AlterConfigs) -----------------

    def _existing_topic(self, name: str, action: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            raise TopicError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        if topic.internal:
            # Kafka allows these, and its coordinator copes with the result. shoal's group
            # coordinator owns the log's settings and its single partition: refuse, loudly.
            raise TopicError(
                ErrorCode.POLICY_VIOLATION,
                f"{name} is an internal topic of shoal's coordinators: shoal does not {action} it",
            )
        return topic

    def delete_topic(self, name: str) -> Topic:
        """Delete a topic and all its data; raises :class:`TopicError` if it does not exist.

        The logs go first and the metadata last. A crash midway leaves the topic listed, its
        deleted partitions recreated empty at the next start, for the client to delete again;
        the other order could leave data behind that a topic re-created under the same name
        would serve as its own.
        """
        topic = self._existing_topic(name, "delete")
        partitions = set(range(topic.partitions))
        # Also partitions beyond the count: left by a CreatePartitions that crashed midway.
        partitions.update(tp.partition for tp in self.logs.partitions() if tp.topic == name)
        partitions.update(tp.partition for tp in self.logs.offline if tp.topic == name)
        for partition in sorted(partitions):
            self.logs.delete(name, partition)
            # A Fetch parked on the partition wakes up and finds it gone.
            self.signals.notify(name, partition)
        self.topics.remove(name)
        self.stats.topics.pop(name, None)  # metrics (issue 17): as Kafka drops a topic's meters
        log.info("deleted topic %s (%d partitions)", name, topic.partitions)
        return topic

    def create_partitions(self, name: str, count: int, *, validate_only: bool = False) -> Topic:
        """Grow a topic to ``count`` partitions; raises :class:`TopicError` with the Kafka error.

        New logs are created before the count is saved: after a crash in between, the extra
        logs exist but no client can see them, and the next CreatePartitions reuses them.
        """
        topic = self._existing_topic(name, "add partitions to")
        current = topic.partitions
        if count < current:
            raise TopicError(
                ErrorCode.INVALID_PARTITIONS,
                f"topic {name!r} has {current} partitions and Kafka topics cannot lose "
                f"partitions: {count} would be a decrease",
            )
        if count == current:
            raise TopicError(
                ErrorCode.INVALID_PARTITIONS, f"topic {name!r} already has {current} partitions"
            )
        if count > MAX_PARTITIONS_PER_TOPIC:
            raise TopicError(
                ErrorCode.INVALID_PARTITIONS,
                f"a topic may have at most {MAX_PARTITIONS_PER_TOPIC} partitions, not {count}",
            )
        if validate_only:
            return topic
        config = self.log_config(topic)
        for partition in range(current, count):
            self.logs.create(name, partition, config)
        self.topics.set_partitions(name, count)
        log.info("topic %s grew from %d to %d partitions", name, current, count)
        return topic

    def set_topic_configs(
        self, name: str, configs: Mapping[str, str], *, validate_only: bool = False
    ) -> Topic:
        """Replace a topic's config overrides (in the canonical form of :mod:`topic_configs`).

        The new set is saved first and then applied to the live logs, so a failed save changes
        nothing; raises :class:`TopicError` for an unknown topic or an invalid config.
        """
        topic = self._existing_topic(name, "change the configs of")
        try:
            config = self._log_config_with(configs)
        except ValueError as exc:
            raise TopicError(ErrorCode.INVALID_CONFIG, str(exc)) from exc
        if validate_only:
            return topic
        self.topics.set_configs(name, configs)
        for partition in range(topic.partitions):
            plog = self.logs.get(name, partition)
            if plog is not None:
                plog.update_config(config)
        log.info("topic %s configs are now %s", name, dict(configs))
        return topic

    # -- dynamic broker configs (AlterConfigs on the BROKER resource) -----------------------

    def config_levels(self) -> ConfigLevels:
        return ConfigLevels(
            per_broker=self.dynamic_configs.broker(self.config.node_id),
            cluster=self.dynamic_configs.cluster,
            static=static_configs(self.config, self.logs.path),
        )

    def set_broker_configs(
        self, cluster: bool, configs: Mapping[str, str], *, validate_only: bool = False
    ) -> None:
        """Replace the dynamic configs of this broker, or the cluster-wide ones, and apply them
        to every topic at once. Raises :class:`ConfigError` (nothing changed) when refused.

        The new level is saved first, then applied: a failed save changes nothing.
        """
        level = validate_dynamic(configs, cluster=cluster)
        per_broker = self.dynamic_configs.broker(self.config.node_id)
        levels = ConfigLevels(
            per_broker=per_broker if cluster else level,
            cluster=level if cluster else self.dynamic_configs.cluster,
            static={},
        )
        topic_defaults = levels.dynamic_topic_defaults()
        for topic in self.topics:
            try:  # a topic's own overrides must still make sense with the new defaults
                log_config_for(self.config.log, {**topic_defaults, **topic.configs})
            except ValueError as exc:
                raise ConfigError(f"topic {topic.name}: {exc}") from exc
        if validate_only:
            return
        self.dynamic_configs.replace(None if cluster else self.config.node_id, level)
        self._topic_defaults = topic_defaults
        for topic in self.topics:
            config = self.log_config(topic)
            for partition in range(topic.partitions):
                plog = self.logs.get(topic.name, partition)
                if plog is not None:
                    plog.update_config(config)
        self._apply_cleaner_configs()
        scope = "cluster-wide" if cluster else f"broker {self.config.node_id}"
        log.info("dynamic %s broker configs are now %s", scope, dict(level))

    def _apply_cleaner_configs(self) -> None:
        """Hand the log cleaner the log.cleaner.* values it takes at runtime (issue 15)."""
        if self.logs.cleaner is not None:
            levels = self.config_levels()
            self.logs.cleaner.update_settings(cleaner_settings_with(self.config.cleaner, levels))

    # -- authorization (the ACLs; with no authorizer configured everything is allowed) --------

    def authorize(
        self, ctx: RequestContext, operation: AclOperation, resource_type: ResourceType, name: str
    ) -> bool:
        """Whether the request's principal may do ``operation`` on the resource (Kafka's
        AuthHelper.authorize)."""
        if self.acls is None:
            return True
        return self.acls.authorizer.authorize(
            ctx.principal, ctx.client_host, operation, resource_type, name
        )

    def authorize_cluster(self, ctx: RequestContext, operation: AclOperation) -> bool:
        return self.authorize(ctx, operation, ResourceType.CLUSTER, CLUSTER_NAME)

    def authorized_names(
        self,
        ctx: RequestContext,
        operation: AclOperation,
        resource_type: ResourceType,
        names: Iterable[str],
    ) -> set[str]:
        """The names among ``names`` the principal may do ``operation`` on, each decided once
        (Kafka's AuthHelper.filterByAuthorized)."""
        wanted = set(names)
        if self.acls is None:
            return wanted
        authorizer = self.acls.authorizer
        return {
            name
            for name in wanted
            if authorizer.authorize(ctx.principal, ctx.client_host, operation, resource_type, name)
        }

    def authorize_by_resource_type(
        self, ctx: RequestContext, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        """Whether the principal may do ``operation`` on some resource of the type."""
        if self.acls is None:
            return True
        return self.acls.authorizer.authorize_by_resource_type(
            ctx.principal, ctx.client_host, operation, resource_type
        )

    def authorized_operations(
        self, ctx: RequestContext, resource_type: ResourceType, name: str, *, asked: bool
    ) -> int:
        """KIP-430's field: the supported operations the principal may do on the resource,
        every supported one without an authorizer, INT32_MIN when the client did not ask."""
        if not asked:
            return NOT_ASKED
        if self.acls is None:
            return sum(1 << op for op in SUPPORTED_OPERATIONS[resource_type])
        return self.acls.authorizer.authorized_operations(
            ctx.principal, ctx.client_host, resource_type, name
        )
