"""``shoal console``'s consumer-group requests, run in a worker process (shoal.client_worker).

librdkafka aborts the whole process when a group coordinator's connection drops under a
DescribeConsumerGroups or ListConsumerGroupOffsets (librdkafka issue 4605), and the offset
commit of a reset (AlterConsumerGroupOffsets) goes to the coordinator in the same way; the
listing goes with them so a group page's requests share one client. Here an abort ends only
the worker: :class:`GroupRequests` answers that request with 503 and starts a new worker, whose
new client looks the coordinator up again, and the console itself goes on serving.

The functions below run in the worker: each takes the client settings (the worker keeps one
Admin client per settings for its life) and answers plain data, which crosses the pipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from shoal.client_worker import ClientWorker, WorkerFailed, step
from shoal.console.errors import ConsoleError, from_kafka

REQUEST_TIMEOUT_S: Final = 15.0
"""How long one Admin request may take before the page gets a 502 (a cluster under load)."""
WORKER_WAIT_S: Final = 2 * REQUEST_TIMEOUT_S + 5.0
"""How long one call to the worker may take before it is taken for hung and replaced: a call
makes up to two requests in turn (the listing, then describing what it lists)."""
NO_OFFSET: Final = -1001
"""librdkafka's OFFSET_INVALID: a partition the group has no committed offset for."""
UNAVAILABLE: Final = "kafka_client_unavailable"

_ADMINS: dict[tuple[tuple[str, Any], ...], AdminClient] = {}
"""In the worker: its Admin client per client settings."""


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """What the console shows of DescribeConsumerGroups' answer for one group."""

    state: str
    """As Kafka's tools print it: ``Stable``, ``Empty``, ``Dead``, ..."""
    type: str
    """``consumer`` (KIP-848) or ``classic``."""
    assignor: str | None
    members: tuple[dict[str, str | None], ...]
    """``member_id``, ``group_instance_id``, ``client_id``, ``client_host``."""


@dataclass(frozen=True, slots=True)
class Committed:
    topic: str
    partition: int
    offset: int
    metadata: str | None


def _admin(config: dict[str, Any]) -> AdminClient:
    key = tuple(sorted(config.items()))
    if key not in _ADMINS:
        _ADMINS[key] = AdminClient(dict(config))
    return _ADMINS[key]


def admin_result(future: Any, action: str) -> Any:
    """An Admin request's answer, or its error as the admin API answers it (502 when no broker
    answered in time). In the worker, the request is named first (:func:`step`)."""
    step(action)
    try:
        return future.result(timeout=REQUEST_TIMEOUT_S)
    except KafkaException as exc:
        raise from_kafka(exc, action) from exc
    except TimeoutError as exc:
        raise ConsoleError(502, "broker_unreachable", f"{action}: no answer in time") from exc


def _info(group: Any) -> GroupInfo:
    state = "".join(part.capitalize() for part in group.state.name.split("_"))
    kind = getattr(group, "type", None)
    return GroupInfo(
        state=state,
        type="consumer" if kind is not None and kind.name == "CONSUMER" else "classic",
        assignor=group.partition_assignor or None,
        members=tuple(
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.host,
            }
            for m in group.members
        ),
    )


def describe(config: dict[str, Any], ids: list[str]) -> dict[str, GroupInfo]:
    """In the worker: DescribeConsumerGroups of ``ids``."""
    if not ids:
        return {}
    futures = _admin(config).describe_consumer_groups(ids)
    return {g: _info(admin_result(futures[g], f"describe group {g!r}")) for g in ids}


def list_and_describe(config: dict[str, Any]) -> dict[str, GroupInfo]:
    """In the worker: every group (ListConsumerGroups), described."""
    listing = admin_result(_admin(config).list_consumer_groups(), "list groups")
    return describe(config, sorted(g.group_id for g in listing.valid))


def committed(config: dict[str, Any], group_id: str) -> list[Committed]:
    """In the worker: the group's committed offsets (ListConsumerGroupOffsets)."""
    request = [ConsumerGroupTopicPartitions(group_id)]
    future = _admin(config).list_consumer_group_offsets(request)[group_id]
    answer = admin_result(future, f"list offsets of group {group_id!r}")
    return [
        Committed(tp.topic, tp.partition, tp.offset, tp.metadata)
        for tp in answer.topic_partitions
        if tp.offset != NO_OFFSET
    ]


def commit(config: dict[str, Any], group_id: str, offsets: list[tuple[str, int, int]]) -> None:
    """In the worker: commit ``(topic, partition, offset)`` for the group
    (AlterConsumerGroupOffsets)."""
    tps = [TopicPartition(topic, partition, offset) for topic, partition, offset in offsets]
    request = [ConsumerGroupTopicPartitions(group_id, tps)]
    future = _admin(config).alter_consumer_group_offsets(request)[group_id]
    admin_result(future, f"commit offsets of group {group_id!r}")


class GroupRequests:
    """The console's side: each call runs in the worker; a worker that died or hung is
    answered as 503 (naming the request it was in) and replaced for the next call."""

    def __init__(self, config: dict[str, Any], wait_s: float = WORKER_WAIT_S) -> None:
        self.config = config
        self.worker = ClientWorker(wait_s, name="the console's consumer-group client")

    def describe(self, ids: list[str]) -> dict[str, GroupInfo]:
        result: dict[str, GroupInfo] = self._call(describe, ids)
        return result

    def list_and_describe(self) -> dict[str, GroupInfo]:
        result: dict[str, GroupInfo] = self._call(list_and_describe)
        return result

    def committed(self, group_id: str) -> list[Committed]:
        result: list[Committed] = self._call(committed, group_id)
        return result

    def commit(self, group_id: str, offsets: list[tuple[str, int, int]]) -> None:
        self._call(commit, group_id, offsets)

    def renew(self) -> None:
        """New clients for the next call (a coordinator cached on a dead broker); returns at
        once, from any thread."""
        self.worker.mark_stale()

    def close(self) -> None:
        self.worker.close()

    def _call(self, function: Any, *args: Any) -> Any:
        try:
            return self.worker.call(function, self.config, *args)
        except WorkerFailed as exc:
            raise ConsoleError(
                503, UNAVAILABLE, f"{exc}; a new client has been started: try again"
            ) from None
