"""Topics, consumer groups and the cluster overview through Kafka's Admin API.

Each method answers in the JSON shape of the broker-served admin API (docs/admin-api.md), so
the console's pages work unchanged. Blocking calls: the web app runs them on worker threads.
What Kafka's Admin API does not expose is null here: a partition's size on disk
(DescribeLogDirs is not in confluent-kafka), the broker's free disk and its traffic counters
(those are broker metrics), and a group's lag in seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any, Final

from confluent_kafka import (
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    OffsetSpec,
    ResourcePatternType,
    ResourceType,
)

from shoal.console import security_changes
from shoal.console.errors import ConsoleError, from_kafka
from shoal.console.group_requests import (
    REQUEST_TIMEOUT_S,
    WORKER_WAIT_S,
    GroupRequests,
    admin_result,
)

CREATED_VISIBLE_S: Final = 10.0
"""How long describing a topic just created may get retriable errors (its metadata and
leaders settling) before the page shows the error."""
CREATED_POLL_S: Final = 0.1
RENEW_INTERVAL_S: Final = 5.0
"""A fresh Admin client at most this often (seconds): many requests timing out together
(worker threads and the event loop) renew it once, not once each."""
_OPERATIONS: Final = {
    "set": AlterConfigOpType.SET,
    "delete": AlterConfigOpType.DELETE,
    "append": AlterConfigOpType.APPEND,
    "subtract": AlterConfigOpType.SUBTRACT,
}
_SOURCES: Final = {"DYNAMIC_TOPIC_CONFIG": "TOPIC_CONFIG"}
"""librdkafka's config source names where they differ from the broker-served API's."""


class KafkaAdmin:
    """The Admin-API half of the console's backend. ``config``: librdkafka settings
    (``bootstrap.servers`` and any security settings)."""

    def __init__(
        self,
        config: dict[str, Any],
        clock: Callable[[], float] = time.monotonic,
        group_wait_s: float = WORKER_WAIT_S,
    ) -> None:
        self.config = config
        self.admin = AdminClient(dict(config))
        self.groups = GroupRequests(config, group_wait_s)
        """Consumer-group requests, in a worker process (librdkafka's abort: see there)."""
        self._clock = clock
        self._renew_lock = threading.Lock()
        self._renewed_at: float | None = None
        self._seen_brokers: dict[int, tuple[str, int]] = {}
        """node id → (host, port) of every broker the overview has seen up: Kafka's Metadata
        and DescribeCluster list only the live ones, so a broker that dies would vanish."""
        self._up: set[int] = set()
        """The brokers up at the last overview."""

    def renew(self, *, force: bool = False) -> bool:
        """A fresh Admin client, after a request got no answer in time. librdkafka keeps a
        group's coordinator cached: when that broker dies, the client goes on sending the
        group's requests to it (each one waits out its timeout) until it comes back, where a
        new client looks the coordinator up again and finds the one that took over.

        Called from worker threads and the event loop: at most once per
        :data:`RENEW_INTERVAL_S` (``force``: now, for a broker seen lost, which is rare);
        returns whether this call made a new client."""
        with self._renew_lock:
            now = self._clock()
            recent = self._renewed_at is not None and now - self._renewed_at < RENEW_INTERVAL_S
            if recent and not force:
                return False
            self._renewed_at = now
            old, self.admin = self.admin, AdminClient(dict(self.config))
            self.groups.renew()
        # Destroyed on a thread of its own: destroying a client may wait for its requests in
        # flight, and this runs on a request's worker thread.
        threading.Thread(target=_discard, args=(old,), daemon=True).start()
        del old
        return True

    def close(self) -> None:
        """Ends the group requests' worker process."""
        self.groups.close()

    # -- topics -------------------------------------------------------------------------------

    def watermarks(self, partitions: Iterable[TopicPartition]) -> dict[tuple[str, int], list[int]]:
        """(topic, partition) → [low, high], by ListOffsets (earliest and latest)."""
        wanted = list(partitions)
        marks: dict[tuple[str, int], list[int]] = {
            (tp.topic, tp.partition): [0, 0] for tp in wanted
        }
        specs = (OffsetSpec.earliest(), OffsetSpec.latest())  # type: ignore[no-untyped-call]
        for index, spec in enumerate(specs):
            if not wanted:
                break
            futures = self.admin.list_offsets({tp: spec for tp in wanted})
            for tp, future in futures.items():
                marks[(tp.topic, tp.partition)][index] = admin_result(future, "list offsets").offset
        return marks

    def _describe(self, names: list[str]) -> list[Any]:
        if not names:
            return []
        futures = self.admin.describe_topics(TopicCollection(names))
        return [admin_result(futures[n], f"describe topic {n!r}") for n in names]

    def topic_kind(self, name: str) -> tuple[bool, bool]:
        """(exists, internal) for ``name``, as Metadata says (a redrive target's check)."""
        try:
            (described,) = self._describe([name])
        except ConsoleError as exc:
            if exc.status == 404:
                return False, False
            raise
        return True, bool(described.is_internal)

    def _summaries(self, descriptions: list[Any]) -> list[dict[str, Any]]:
        marks = self.watermarks(
            TopicPartition(d.name, p.id) for d in descriptions for p in d.partitions
        )
        return [
            {
                "name": d.name,
                "topic_id": str(d.topic_id),
                "internal": bool(d.is_internal),
                "partitions": [
                    {
                        "partition": p.id,
                        "low_watermark": marks[(d.name, p.id)][0],
                        "high_watermark": marks[(d.name, p.id)][1],
                        "size_bytes": None,
                        # Where the partition lives: on a cluster, which broker leads it (null
                        # while none does) and which replicas are in sync with it.
                        "leader": p.leader.id if p.leader is not None else None,
                        "replicas": [r.id for r in p.replicas],
                        "isr": [r.id for r in p.isr],
                    }
                    for p in sorted(d.partitions, key=lambda p: p.id)
                ],
            }
            for d in descriptions
        ]

    def list_topics(self) -> dict[str, Any]:
        try:
            names = sorted(self.admin.list_topics(timeout=REQUEST_TIMEOUT_S).topics)
        except KafkaException as exc:
            raise from_kafka(exc, "list topics") from exc
        return {"topics": self._summaries(self._describe(names))}

    def describe_topic(self, name: str) -> dict[str, Any]:
        (summary,) = self._summaries(self._describe([name]))
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        entries = admin_result(
            self.admin.describe_configs([resource])[resource], "describe configs"
        )
        summary["configs"] = [
            {
                "name": entry.name,
                "value": entry.value,
                "source": _source_name(entry.source),
                "read_only": bool(entry.is_read_only),
            }
            for entry in sorted(entries.values(), key=lambda e: e.name)
        ]
        return summary

    def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> dict[str, Any]:
        topic = NewTopic(name, num_partitions=partitions, config=configs)
        admin_result(self.admin.create_topics([topic])[name], f"create topic {name!r}")
        # Kafka answers CreateTopics once the controller has the topic; a broker's metadata
        # and its partitions' leaders can lag behind for a moment, so describing it at once
        # may get a retriable error (UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_LEADER_EPOCH).
        deadline = time.monotonic() + CREATED_VISIBLE_S
        while True:
            try:
                return self.describe_topic(name)
            except ConsoleError as exc:
                if not exc.retriable or time.monotonic() > deadline:
                    raise
            time.sleep(CREATED_POLL_S)

    def delete_topic(self, name: str) -> dict[str, Any]:
        admin_result(self.admin.delete_topics([name])[name], f"delete topic {name!r}")
        return {"deleted": name}

    def alter_configs(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """``{"set": {k: v}, "delete": [k], "append": {k: v}, "subtract": {k: v}}``."""
        entries: list[Any] = []
        for operation, items in changes.items():
            op = _OPERATIONS[operation]
            pairs = [(k, None) for k in items] if operation == "delete" else items.items()
            entries.extend(ConfigEntry(k, v, incremental_operation=op) for k, v in pairs)
        resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
        futures = self.admin.incremental_alter_configs([resource])
        admin_result(futures[resource], f"alter configs of {name!r}")
        return self.describe_topic(name)

    # -- consumer groups ----------------------------------------------------------------------

    def list_groups(self) -> dict[str, Any]:
        described = self.groups.list_and_describe()
        return {
            "groups": [
                {
                    "group_id": g,
                    "type": info.type,
                    "state": info.state,
                    "protocol_type": "consumer",
                    "members": len(info.members),
                }
                for g, info in described.items()
            ]
        }

    def describe_group(self, group_id: str) -> dict[str, Any]:
        group = self.groups.describe([group_id])[group_id]
        committed = sorted(self.groups.committed(group_id), key=lambda c: (c.topic, c.partition))
        if group.state == "Dead" and not committed:
            raise ConsoleError(404, "group_id_not_found", f"group {group_id!r} does not exist")
        marks = self.watermarks(TopicPartition(c.topic, c.partition) for c in committed)
        return {
            "group_id": group_id,
            "type": group.type,
            "state": "Empty" if group.state == "Dead" else group.state,
            "protocol_type": "consumer",
            "protocol": group.assignor,
            "members": list(group.members),
            "offsets": [
                {
                    "topic": c.topic,
                    "partition": c.partition,
                    "committed_offset": c.offset,
                    "metadata": c.metadata,
                    "high_watermark": marks[(c.topic, c.partition)][1],
                    "lag": max(0, marks[(c.topic, c.partition)][1] - c.offset),
                    "lag_seconds": None,  # needs a record's timestamp: a Fetch per partition
                }
                for c in committed
            ],
        }

    def reset_offsets(
        self, group_id: str, topic: str, partitions: list[int] | None, to: str, value: int | None
    ) -> list[dict[str, Any]]:
        """The new offsets (a dry run: nothing is committed here; see :meth:`commit`)."""
        group = self.groups.describe([group_id])[group_id]
        if group.members:
            raise ConsoleError(
                409,
                "group_active",
                f"group {group_id!r} has {len(group.members)} active members: stop its "
                "consumers first",
            )
        (description,) = self._describe([topic])
        every = sorted(p.id for p in description.partitions)
        chosen = every if partitions is None else partitions
        unknown = sorted(set(chosen) - set(every))
        if unknown:
            raise ConsoleError(
                404, "unknown_topic_or_partition", f"{topic!r} has no partitions {unknown}"
            )
        tps = [TopicPartition(topic, p) for p in chosen]
        marks = self.watermarks(tps)
        current = {(c.topic, c.partition): c.offset for c in self.groups.committed(group_id)}
        targets: dict[int, int] = {}
        if to in ("timestamp", "offset") and value is None:
            raise ConsoleError(400, "invalid_field", f"to={to} needs an integer value")
        if to == "timestamp" and value is not None:
            futures = self.admin.list_offsets({tp: OffsetSpec.for_timestamp(value) for tp in tps})
            for tp, future in futures.items():
                found = admin_result(future, "list offsets by timestamp").offset
                targets[tp.partition] = marks[(topic, tp.partition)][1] if found < 0 else found
        for p in chosen:
            low, high = marks[(topic, p)]
            if to == "earliest":
                targets[p] = low
            elif to == "latest":
                targets[p] = high
            elif to == "offset" and value is not None:
                if not low <= value <= high:
                    raise ConsoleError(
                        400, "offset_out_of_range", f"offset {value} is outside [{low}, {high}]"
                    )
                targets[p] = value
        return [
            {
                "topic": topic,
                "partition": p,
                "current_offset": current.get((topic, p)),
                "new_offset": targets[p],
            }
            for p in chosen
        ]

    def commit(self, group_id: str, rows: list[dict[str, Any]]) -> None:
        self.groups.commit(group_id, [(r["topic"], r["partition"], r["new_offset"]) for r in rows])

    # -- security (read-only) -----------------------------------------------------------------

    def acls(self) -> dict[str, Any]:
        """Every ACL binding. ``authorizer`` is true when there are ACLs, else null (unknown):
        a broker without an authorizer answers DescribeAcls with SECURITY_DISABLED, but
        librdkafka gives an empty list for that, so the client API cannot tell."""
        # None in a text field matches every value (Kafka's AclBindingFilter); the stubs say
        # str only.
        everything = AclBindingFilter(
            ResourceType.ANY,
            None,  # type: ignore[arg-type]
            ResourcePatternType.ANY,
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        bindings = admin_result(self.admin.describe_acls(everything), "describe ACLs")
        rows = [
            {
                "resource_type": b.restype.name,
                "resource_name": b.name,
                "pattern_type": b.resource_pattern_type.name,
                "principal": b.principal,
                "host": b.host,
                "operation": b.operation.name,
                "permission_type": b.permission_type.name,
            }
            for b in bindings
        ]
        rows.sort(key=lambda r: (r["resource_type"], r["resource_name"], r["principal"]))
        return {"authorizer": True if rows else None, "acls": rows}

    def users(self) -> dict[str, Any]:
        described = admin_result(self.admin.describe_user_scram_credentials(), "describe users")
        return {
            "users": [
                {
                    "user": user,
                    "mechanisms": [
                        {
                            "mechanism": info.mechanism.name.replace("_", "-"),
                            "iterations": info.iterations,
                        }
                        for info in description.scram_credential_infos
                    ],
                }
                for user, description in sorted(described.items())
            ]
        }

    # -- security changes (CreateAcls, DeleteAcls, AlterUserScramCredentials) ----------------

    def create_acl(self, body: dict[str, Any]) -> dict[str, Any]:
        acl = security_changes.binding(body)
        [future] = self.admin.create_acls([acl]).values()
        admin_result(future, "create ACL")
        return {"acl": security_changes.row(acl)}

    def delete_acl(self, body: dict[str, Any]) -> dict[str, Any]:
        """Remove exactly the ACL in the body: 404 when there is none such."""
        exact = security_changes.exact_filter(security_changes.binding(body))
        [future] = self.admin.delete_acls([exact]).values()
        deleted = admin_result(future, "delete ACL")
        if not deleted:
            raise ConsoleError(404, "acl_not_found", "no such ACL: nothing deleted")
        return {"deleted": [security_changes.row(b) for b in deleted]}

    def set_user(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        change, iterations = security_changes.upsertion(user, body)
        [future] = self.admin.alter_user_scram_credentials([change]).values()
        admin_result(future, f"set the credential of {user!r}")
        return {"user": user, "mechanism": body["mechanism"], "iterations": iterations}

    def delete_user(self, user: str, mechanism: str | None) -> dict[str, Any]:
        change = security_changes.deletion(user, mechanism)
        [future] = self.admin.alter_user_scram_credentials([change]).values()
        admin_result(future, f"delete the {mechanism} credential of {user!r}")
        return {"user": user, "mechanism": mechanism, "deleted": True}

    # -- overview -----------------------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        # Metadata, not DescribeCluster: librdkafka sends DescribeCluster to one broker and
        # waits out its timeout if that broker has just died, where a Metadata request is
        # retried on another; and Metadata carries the same cluster id, controller and brokers.
        try:
            cluster = self.admin.list_topics(timeout=REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            raise from_kafka(exc, "describe cluster") from exc
        topics = cluster.topics
        try:
            version = metadata.version("shoal")
        except metadata.PackageNotFoundError:
            version = "unknown"
        return {
            "node_id": cluster.controller_id if cluster.controller_id >= 0 else None,
            "version": version,
            "cluster_id": cluster.cluster_id,
            "brokers": self._brokers(list(cluster.brokers.values()), topics.values()),
            "topics": len(topics),
            "partitions": sum(len(t.partitions) for t in topics.values()),
            "disk": None,  # a broker metric: not in Kafka's Admin API
            "traffic": None,
            "topic_traffic": [],
        }

    def _brokers(self, live: list[Any], topics: Iterable[Any]) -> list[dict[str, Any]]:
        """Every broker known, each ``up`` or ``down``. Known: live now, seen live before by
        this console, or named as a replica of a partition (a broker that died before the
        console started still holds its replicas' assignment)."""
        for node in live:
            self._seen_brokers[node.id] = (node.host, node.port)
        up = {node.id for node in live}
        lost, self._up = self._up - up, up
        if lost:  # coordinators cached on a lost broker: look them up afresh (see renew)
            self.renew(force=True)
        assigned = {r for t in topics for p in t.partitions.values() for r in p.replicas}
        rows = []
        for node_id in sorted(up | assigned | set(self._seen_brokers)):
            host, port = self._seen_brokers.get(node_id, (None, None))
            status = "up" if node_id in up else "down"
            rows.append({"node_id": node_id, "host": host, "port": port, "status": status})
        return rows


def _discard(client: AdminClient) -> None:
    """Drop the last reference to ``client`` here, so its destruction runs on this thread."""
    del client


def _source_name(source: Any) -> str:
    name = str(ConfigSource(source).name)
    return _SOURCES.get(name, name)
