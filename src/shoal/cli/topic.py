"""``shoal topic``: create, list, describe, alter the configs of, and delete topics.

The text layouts follow Kafka's own ``kafka-topics`` and ``kafka-configs`` so that scripts and
habits carry over; ``--format json`` is for programs.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection

# These names are the admin module's documented API; it imports them without __all__, which
# mypy's strict mode reads as private. Their types still come through.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
    TopicDescription,
)

from shoal.cli.common import (
    ClientContext,
    CliError,
    UsageError,
    add_client_options,
    is_unknown_topic,
    key_value,
)
from shoal.cli.dirty_ratio import (
    DEFAULT_HTTP_URL,
    HTTP_URL_ENV,
    DirtyRatioUnavailable,
    default_http_url,
    dirty_ratios,
    is_compacted,
)

BROKER_DEFAULT = -1
"""CreateTopics v4+: let the broker choose (num.partitions, default.replication.factor). On a
Kafka cluster the right replication factor is the cluster's, not a number the tool guesses."""


def add_topic_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topic = sub.add_parser("topic", help="create, list, describe, alter and delete topics")
    actions = topic.add_subparsers(dest="topic_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a topic")
    create.add_argument("name")
    create.add_argument(
        "-p",
        "--partitions",
        type=int,
        default=BROKER_DEFAULT,
        help="number of partitions (default: the broker's num.partitions)",
    )
    create.add_argument(
        "-r",
        "--replication-factor",
        type=int,
        default=BROKER_DEFAULT,
        help="replicas per partition (default: the broker's default; shoal has one)",
    )
    create.add_argument(
        "-c",
        "--config",
        dest="configs",
        metavar="KEY=VALUE",
        type=key_value,
        action="append",
        default=[],
        help="a topic config, e.g. -c retention.ms=60000 (repeatable)",
    )
    create.add_argument(
        "--if-not-exists", action="store_true", help="succeed if the topic already exists"
    )
    create.set_defaults(run=run_create, command_parser=create)

    listing = actions.add_parser("list", help="list topic names")
    listing.add_argument("--format", choices=["text", "json"], default="text")
    listing.set_defaults(run=run_list, command_parser=listing)

    describe = actions.add_parser(
        "describe", help="partitions, leaders, replicas and config overrides of a topic"
    )
    describe.add_argument("name")
    describe.add_argument("--format", choices=["text", "json"], default="text")
    describe.add_argument(
        "--http-url",
        default=default_http_url(),
        help="the broker's HTTP face, where a compacted topic's dirty ratio is read "
        f"(default ${HTTP_URL_ENV} or {DEFAULT_HTTP_URL})",
    )
    describe.set_defaults(run=run_describe, command_parser=describe)

    delete = actions.add_parser("delete", help="delete a topic and its data")
    delete.add_argument("name")
    delete.set_defaults(run=run_delete, command_parser=delete)

    alter = actions.add_parser("alter-config", help="set or remove topic config overrides")
    alter.add_argument("name")
    alter.add_argument(
        "--set",
        dest="set_configs",
        metavar="KEY=VALUE",
        type=key_value,
        action="append",
        default=[],
        help="set a config override (repeatable)",
    )
    alter.add_argument(
        "--delete",
        dest="delete_configs",
        metavar="KEY",
        action="append",
        default=[],
        help="remove an override, back to the broker default (repeatable)",
    )
    alter.set_defaults(run=run_alter_config, command_parser=alter)

    for parser in (create, listing, describe, delete, alter):
        add_client_options(parser)


def _admin(ctx: ClientContext, topic: str | None = None) -> AdminClient:
    # Describing a missing topic must not create it (librdkafka's admin client is a producer,
    # and producers ask for auto-creation by default).
    admin = AdminClient(ctx.config({"allow.auto.create.topics": False}))
    # One metadata round trip first, so that an unreachable broker is named as such rather
    # than reported as a timed-out admin request. Asking about the one topic keeps the answer
    # small on a cluster with many topics.
    try:
        admin.list_topics(topic, timeout=ctx.timeout_s)
    except KafkaException as exc:
        raise ctx.error(exc, "read cluster metadata", admin) from None
    return admin


class AdminFailure(CliError):
    """An admin request the broker refused; ``code`` is its Kafka error code, if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def _await(ctx: ClientContext, future: Any, action: str, topic: str) -> Any:
    """The result of an admin future; a refusal or silence becomes an :class:`AdminFailure`."""
    try:
        return future.result(timeout=ctx.timeout_s + 1)
    except TimeoutError:
        raise AdminFailure(f"cannot {action}: no answer within {ctx.timeout_s:g} s") from None
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if not isinstance(error, KafkaError):
            raise AdminFailure(f"cannot {action}: {exc}") from None
        if is_unknown_topic(error):
            raise AdminFailure(f"topic {topic!r} does not exist", error.code()) from None
        raise AdminFailure(str(ctx.kafka_error(error, action)), error.code()) from None


# -- create / delete -----------------------------------------------------------------------


def run_create(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    name: str = args.name
    if args.partitions == 0 or args.partitions < BROKER_DEFAULT:
        raise UsageError("--partitions must be a positive number")
    admin = _admin(ctx, name)
    new_topic = NewTopic(
        name,
        num_partitions=args.partitions,
        replication_factor=args.replication_factor,
        config=dict(args.configs),
    )
    futures = admin.create_topics(
        [new_topic], operation_timeout=ctx.timeout_s, request_timeout=ctx.timeout_s
    )
    try:
        _await(ctx, futures[name], f"create topic {name!r}", name)
    except AdminFailure as exc:
        if exc.code != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        if not args.if_not_exists:
            raise CliError(f"topic {name!r} already exists") from None
        print(f"Topic {name} already exists.")
        return 0
    print(f"Created topic {name}.")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    name: str = args.name
    admin = _admin(ctx, name)
    futures = admin.delete_topics(
        [name], operation_timeout=ctx.timeout_s, request_timeout=ctx.timeout_s
    )
    _await(ctx, futures[name], f"delete topic {name!r}", name)
    print(f"Deleted topic {name}.")
    return 0


# -- list / describe -----------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    admin = AdminClient(ctx.config({"allow.auto.create.topics": False}))
    try:
        metadata = admin.list_topics(timeout=ctx.timeout_s)
    except KafkaException as exc:
        raise ctx.error(exc, "list topics", admin) from None
    topics = sorted(metadata.topics.values(), key=lambda t: t.topic or "")
    if args.format == "json":
        doc = [{"name": t.topic, "partitions": len(t.partitions)} for t in topics]
        print(json.dumps(doc))
    else:
        for t in topics:
            print(t.topic)
    return 0


def run_describe(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    name: str = args.name
    admin = _admin(ctx, name)
    futures = admin.describe_topics(TopicCollection([name]), request_timeout=ctx.timeout_s)
    description: TopicDescription = _await(ctx, futures[name], f"describe topic {name!r}", name)
    configs: dict[str, str] | None = None
    try:
        configs = _config_overrides(ctx, admin, name)
    except AdminFailure as exc:
        # The partitions are still worth showing; say why the configs are not.
        print(f"shoal topic describe: configs not shown: {exc}", file=sys.stderr)
    ratios: dict[int, float] | None = None
    if is_compacted(configs):
        try:
            ratios = dirty_ratios(args.http_url, name, ctx.timeout_s)
        except DirtyRatioUnavailable as exc:
            print(f"shoal topic describe: dirty ratio not shown: {exc}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(_describe_doc(description, configs, ratios)))
    else:
        print(_describe_text(description, configs, ratios))
    return 0


def _config_overrides(ctx: ClientContext, admin: AdminClient, name: str) -> dict[str, str]:
    """The topic's own settings, not the broker defaults: what kafka-topics shows."""
    resource = ConfigResource(ResourceType.TOPIC, name)
    futures = admin.describe_configs([resource], request_timeout=ctx.timeout_s)
    entries: dict[str, ConfigEntry] = _await(
        ctx, futures[resource], f"describe the config of topic {name!r}", name
    )
    return {
        entry.name: entry.value or ""
        for entry in sorted(entries.values(), key=lambda e: e.name)
        if _is_topic_override(entry) and not entry.is_sensitive
    }


def _is_topic_override(entry: ConfigEntry) -> bool:
    # describe_configs fills ``source`` with the raw int, not the ConfigSource its type says
    # (confluent-kafka 2.16); compare values so that either works.
    source: object = entry.source
    value = source.value if isinstance(source, ConfigSource) else source
    return bool(value == ConfigSource.DYNAMIC_TOPIC_CONFIG.value)


def kafka_topic_id(description: TopicDescription) -> str:
    """Kafka prints topic ids as URL-safe base64 without padding (``Uuid.toString``); the
    client's ``str`` uses the standard alphabet."""
    return str(description.topic_id).translate(_URL_SAFE)


_URL_SAFE = str.maketrans("+/", "-_")


def _replication_factor(description: TopicDescription) -> int:
    return len(description.partitions[0].replicas) if description.partitions else 0


def _node_ids(nodes: list[Any]) -> str:
    return ",".join(str(node.id) for node in nodes)


def _describe_text(
    description: TopicDescription,
    configs: dict[str, str] | None,
    ratios: dict[int, float] | None = None,
) -> str:
    config_text = ",".join(f"{k}={v}" for k, v in (configs or {}).items())
    lines = [
        f"Topic: {description.name}\tTopicId: {kafka_topic_id(description)}\t"
        f"PartitionCount: {len(description.partitions)}\t"
        f"ReplicationFactor: {_replication_factor(description)}\tConfigs: {config_text}"
    ]
    for p in sorted(description.partitions, key=lambda p: p.id):
        leader = p.leader.id if p.leader is not None else "none"
        lines.append(
            f"\tTopic: {description.name}\tPartition: {p.id}\tLeader: {leader}\t"
            f"Replicas: {_node_ids(p.replicas)}\tIsr: {_node_ids(p.isr)}"
            # A compacted topic's cleaner lag (shoal's addition to kafka-topics' layout).
            + (f"\tDirtyRatio: {ratios[p.id]:.2f}" if ratios and p.id in ratios else "")
        )
    return "\n".join(lines)


def _describe_doc(
    description: TopicDescription,
    configs: dict[str, str] | None,
    ratios: dict[int, float] | None = None,
) -> dict[str, Any]:
    return {
        "name": description.name,
        "topic_id": kafka_topic_id(description),
        "internal": description.is_internal,
        "partition_count": len(description.partitions),
        "replication_factor": _replication_factor(description),
        "configs": configs,
        "partitions": [
            {
                "partition": p.id,
                "leader": p.leader.id if p.leader is not None else None,
                "replicas": [n.id for n in p.replicas],
                "isr": [n.id for n in p.isr],
                # Only for a compacted topic whose ratios could be read.
                **({"dirty_ratio": ratios.get(p.id)} if ratios is not None else {}),
            }
            for p in sorted(description.partitions, key=lambda p: p.id)
        ],
    }


# -- alter-config --------------------------------------------------------------------------


def run_alter_config(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    name: str = args.name
    sets: list[tuple[str, str]] = args.set_configs
    deletes: list[str] = args.delete_configs
    if not sets and not deletes:
        raise UsageError("give at least one --set KEY=VALUE or --delete KEY")
    both = {k for k, _ in sets} & set(deletes)
    if both:
        raise UsageError(f"a config cannot be both set and deleted: {', '.join(sorted(both))}")
    admin = _admin(ctx, name)
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in sets]
    entries += [
        ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in deletes
    ]
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
    futures = admin.incremental_alter_configs([resource], request_timeout=ctx.timeout_s)
    try:
        _await(ctx, futures[resource], f"alter the config of topic {name!r}", name)
    except AdminFailure as exc:
        if exc.code != KafkaError._UNSUPPORTED_FEATURE:
            raise
        _alter_whole_config(ctx, admin, name, sets, deletes)
    print(f"Completed updating config for topic {name}.")
    return 0


def _alter_whole_config(
    ctx: ClientContext,
    admin: AdminClient,
    name: str,
    sets: list[tuple[str, str]],
    deletes: list[str],
) -> None:
    """For brokers without IncrementalAlterConfigs (before Kafka 2.3): AlterConfigs replaces
    every override, so read the current ones and send them back with the changes, as
    kafka-configs did then. Not atomic: a concurrent change in between is lost."""
    try:
        current = _config_overrides(ctx, admin, name)
    except AdminFailure as exc:
        if exc.code != KafkaError._UNSUPPORTED_FEATURE:
            raise
        raise CliError(
            f"cannot alter the config of topic {name!r}: the broker at {ctx.bootstrap} supports "
            "neither IncrementalAlterConfigs nor DescribeConfigs with AlterConfigs"
        ) from None
    for key in deletes:
        current.pop(key, None)
    current.update(sets)
    resource = ConfigResource(ResourceType.TOPIC, name, set_config=current)
    with warnings.catch_warnings():
        # Deprecated in favour of the incremental API, which this broker lacks.
        warnings.simplefilter("ignore", DeprecationWarning)
        futures = admin.alter_configs([resource], request_timeout=ctx.timeout_s)
    _await(ctx, futures[resource], f"alter the config of topic {name!r}", name)
