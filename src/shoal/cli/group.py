"""``shoal group``: list, describe, reset the offsets of, and delete consumer groups.

The layouts follow Kafka's ``kafka-consumer-groups``: describe prints ``GROUP TOPIC PARTITION
CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID``; reset-offsets prints the plan
(``GROUP TOPIC PARTITION NEW-OFFSET``) and changes nothing unless ``--execute`` is given.
``--format json`` is for programs.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)

# These names are the admin module's documented API; it imports them without __all__, which
# mypy's strict mode reads as private. Their types still come through.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConsumerGroupDescription,
)
from rich.table import Table

from shoal.cli.common import (
    ClientContext,
    CliError,
    UsageError,
    add_client_options,
    topic_partitions,
)
from shoal.cli.group_members import assignment_text, describe_epochs
from shoal.cli.live import Rates, add_watch_options, dash, rate_text, show_live
from shoal.cli.share_groups import list_share_groups
from shoal.client_worker import ClientWorker, step

NO_OFFSET = -1001
"""librdkafka's OFFSET_INVALID: the group has no committed offset for the partition."""


def add_group_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("group", help="list, describe, reset offsets of and delete groups")
    actions = group.add_subparsers(dest="group_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="list consumer groups and their states")
    listing.add_argument("--format", choices=["text", "json"], default="text")
    listing.set_defaults(run=run_list, command_parser=listing)

    describe = actions.add_parser(
        "describe", help="committed offsets, lag and members of a consumer group"
    )
    describe.add_argument("name")
    describe.add_argument("--format", choices=["text", "json"], default="text")
    describe.add_argument(
        "--members",
        action="store_true",
        help="each member with its epoch, assignment and target (KIP-848 consumer groups), "
        "as kafka-consumer-groups --describe --members --verbose",
    )
    describe.add_argument(  # issue 17: a live table
        "--watch", action="store_true", help="redraw the table every --interval seconds"
    )
    add_watch_options(describe)
    describe.set_defaults(run=run_describe, command_parser=describe)

    reset = actions.add_parser(
        "reset-offsets",
        help="plan (and with --execute, commit) new offsets for an inactive group",
    )
    reset.add_argument("name")
    where = reset.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--topic",
        dest="topics",
        metavar="TOPIC[:P,...]",
        action="append",
        default=None,
        help="a topic, or some of its partitions (repeatable)",
    )
    where.add_argument(
        "--all-topics", action="store_true", help="every topic the group has offsets for"
    )
    to = reset.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="the log start offset")
    to.add_argument("--to-latest", action="store_true", help="the log end offset")
    to.add_argument("--to-offset", metavar="N", type=int, help="this offset (kept in range)")
    to.add_argument(
        "--to-datetime",
        metavar="ISO8601",
        type=_datetime,
        help="the first offset at or after this time, e.g. 2024-01-31T12:00:00Z",
    )
    to.add_argument(
        "--shift-by", metavar="N", type=int, help="the committed offset plus N (may be negative)"
    )
    reset.add_argument(
        "--execute", action="store_true", help="commit the new offsets (default: a dry run)"
    )
    reset.add_argument("--format", choices=["text", "json"], default="text")
    reset.set_defaults(run=run_reset_offsets, command_parser=reset)

    delete = actions.add_parser("delete", help="delete an empty group and its offsets")
    delete.add_argument("name")
    delete.set_defaults(run=run_delete, command_parser=delete)

    for parser in (listing, describe, reset, delete):
        add_client_options(parser)


def _datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time, got {text!r}") from None
    # A time without a zone is local time, as in kafka-consumer-groups.
    return value if value.tzinfo is not None else value.astimezone()


def _admin(ctx: ClientContext) -> AdminClient:
    admin = AdminClient(ctx.config({"allow.auto.create.topics": False}))
    # One metadata round trip first, so that an unreachable broker is named as such rather
    # than reported as a timed-out admin request.
    step("read cluster metadata")
    try:
        admin.list_topics(timeout=ctx.timeout_s)
    except KafkaException as exc:
        raise ctx.error(exc, "read cluster metadata", admin) from None
    return admin


_WORKER_CLIENTS: dict[str, tuple[ClientContext, AdminClient]] = {}
"""A live view's worker process (shoal.client_worker): its context and Admin client, made on
its first read and kept for its life (a new worker has new ones)."""
REFRESH_TIMEOUTS: Final = 3
"""A live view's refresh may take this many --timeout periods (it makes several requests in
turn) before its worker is replaced."""


def client_args(args: argparse.Namespace) -> argparse.Namespace:
    """The connection flags alone: what a live view's worker process needs (picklable)."""
    return argparse.Namespace(
        bootstrap_server=args.bootstrap_server,
        timeout=args.timeout,
        verbose=args.verbose,
        client_properties=args.client_properties,
        command_config=args.command_config,
    )


def worker_clients(args: argparse.Namespace) -> tuple[ClientContext, AdminClient]:
    """In a live view's worker: its context and Admin client (checked as :func:`_admin`)."""
    if "admin" not in _WORKER_CLIENTS:
        ctx = ClientContext(args)
        _WORKER_CLIENTS["admin"] = (ctx, _admin(ctx))
    return _WORKER_CLIENTS["admin"]


def live_worker(args: argparse.Namespace) -> ClientWorker:
    return ClientWorker(wait_s=args.timeout * REFRESH_TIMEOUTS)


def _await(ctx: ClientContext, future: Any, action: str, group: str | None = None) -> Any:
    step(action)  # in a live view's worker: a death or a timeout from here on names it
    try:
        return future.result(timeout=ctx.timeout_s + 1)
    except TimeoutError:
        raise CliError(f"cannot {action}: no answer within {ctx.timeout_s:g} s") from None
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if not isinstance(error, KafkaError):
            raise CliError(f"cannot {action}: {exc}") from None
        if group is not None and error.code() == KafkaError.GROUP_ID_NOT_FOUND:
            raise CliError(f"group {group!r} does not exist") from None
        if group is not None and error.code() == KafkaError.NON_EMPTY_GROUP:
            raise CliError(
                f"cannot {action}: group {group!r} has active members; stop its consumers first"
            ) from None
        raise ctx.kafka_error(error, action) from None


def _state_name(state: Enum) -> str:
    # Kafka's spelling: Stable, PreparingRebalance, ...
    return "".join(word.capitalize() for word in state.name.split("_"))


# -- list / delete -------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    admin = _admin(ctx)
    result = _await(ctx, admin.list_consumer_groups(request_timeout=ctx.timeout_s), "list groups")
    listed = [(g.group_id, _state_name(g.state), "consumer") for g in result.valid]
    listed += [(group, state, "share") for group, state in _share_groups(ctx, admin)]
    listed.sort()
    if args.format == "json":
        doc = [{"group": g, "state": s, "type": t} for g, s, t in listed]
        print(json.dumps(doc))
    else:
        print(_table([("GROUP", "STATE", "TYPE"), *listed]))
    return 0


def _share_groups(ctx: ClientContext, admin: AdminClient) -> list[tuple[str, str]]:
    """KIP-932 share groups (share_groups), on a plaintext listener; none elsewhere.

    Each broker lists only the groups it coordinates, so every broker of the cluster is asked
    (one, on shoal)."""
    if str(ctx.config().get("security.protocol", "PLAINTEXT")).upper() != "PLAINTEXT":
        return []
    try:
        brokers = admin.list_topics(timeout=ctx.timeout_s).brokers.values()
    except KafkaException as exc:
        raise ctx.kafka_error(exc.args[0], "list brokers") from None
    listed: set[tuple[str, str]] = set()
    for broker in brokers:
        try:
            listed.update(list_share_groups(str(broker.host), int(broker.port), ctx.timeout_s))
        except OSError as exc:
            raise CliError(
                f"could not list share groups at {broker.host}:{broker.port}: {exc}"
            ) from None
    return sorted(listed)


def run_delete(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    name: str = args.name
    admin = _admin(ctx)
    futures = admin.delete_consumer_groups([name], request_timeout=ctx.timeout_s)
    _await(ctx, futures[name], f"delete group {name!r}", name)
    print(f"Deleted group {name}.")
    return 0


# -- describe ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OffsetRow:
    group: str
    topic: str
    partition: int
    current_offset: int | None
    log_end_offset: int | None
    lag: int | None
    consumer_id: str | None
    host: str | None
    client_id: str | None


def _describe(ctx: ClientContext, admin: AdminClient, name: str) -> ConsumerGroupDescription:
    futures = admin.describe_consumer_groups([name], request_timeout=ctx.timeout_s)
    description: ConsumerGroupDescription = _await(
        ctx, futures[name], f"describe group {name!r}", name
    )
    if description.state in (ConsumerGroupState.DEAD, ConsumerGroupState.UNKNOWN):
        raise CliError(f"group {name!r} does not exist")
    return description


def _committed(ctx: ClientContext, admin: AdminClient, name: str) -> dict[tuple[str, int], int]:
    futures = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(name)], request_timeout=ctx.timeout_s
    )
    result = _await(ctx, futures[name], f"list the offsets of group {name!r}", name)
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in result.topic_partitions or []
        if tp.offset >= 0 and tp.error is None
    }


def _consumer(ctx: ClientContext) -> Consumer:
    # A consumer with no group only asks for offsets; it never joins or commits.
    return Consumer(
        ctx.config(
            {
                "group.id": "shoal-cli-offsets",
                "enable.auto.commit": False,
                "allow.auto.create.topics": False,
            }
        )
    )


def _watermarks(
    ctx: ClientContext, consumer: Consumer, topic: str, partition: int
) -> tuple[int, int]:
    step(f"read the offsets of {topic}[{partition}]")
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=ctx.timeout_s, cached=False
        )
    except KafkaException as exc:
        raise ctx.error(exc, f"read the offsets of {topic}[{partition}]", consumer) from None
    return int(low), int(high)


def describe_rows(ctx: ClientContext, admin: AdminClient, name: str) -> list[OffsetRow]:
    description = _describe(ctx, admin, name)
    committed = _committed(ctx, admin, name)
    owners: dict[tuple[str, int], Any] = {}
    for member in description.members:
        assignment = member.assignment.topic_partitions if member.assignment else []
        for tp in assignment:
            owners[(tp.topic, tp.partition)] = member
    rows: list[OffsetRow] = []
    consumer = _consumer(ctx)
    try:
        for topic, partition in sorted(set(committed) | set(owners)):
            _, end = _watermarks(ctx, consumer, topic, partition)
            current = committed.get((topic, partition))
            owner = owners.get((topic, partition))
            rows.append(
                OffsetRow(
                    group=name,
                    topic=topic,
                    partition=partition,
                    current_offset=current,
                    log_end_offset=end,
                    lag=None if current is None else max(0, end - current),
                    consumer_id=owner.member_id if owner else None,
                    host=owner.host if owner else None,
                    client_id=owner.client_id if owner else None,
                )
            )
    finally:
        consumer.close()
    # Members with nothing assigned still show, as in kafka-consumer-groups.
    for member in description.members:
        if not (member.assignment and member.assignment.topic_partitions):
            rows.append(
                OffsetRow(
                    name, "", -1, None, None, None, member.member_id, member.host, member.client_id
                )
            )
    return rows


def run_describe(args: argparse.Namespace) -> int:
    if args.watch:
        if args.members or args.format != "text":
            raise UsageError(
                "--watch shows the text table; it goes with neither --members nor --format json"
            )
        return watch_group(args)
    ctx = ClientContext(args)
    name: str = args.name
    admin = _admin(ctx)
    if args.members:
        return describe_members(ctx, admin, name, args.format)
    rows = describe_rows(ctx, admin, name)
    if args.format == "json":
        print(json.dumps([asdict(row) for row in rows]))
        return 0
    header = (
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    )
    table: list[tuple[str, ...]] = [header]
    for row in rows:
        table.append(
            (
                row.group,
                row.topic or "-",
                str(row.partition) if row.partition >= 0 else "-",
                _dash(row.current_offset),
                _dash(row.log_end_offset),
                _dash(row.lag),
                row.consumer_id or "-",
                row.host or "-",
                row.client_id or "-",
            )
        )
    if not rows:
        print(f"Consumer group '{name}' has no active members and no committed offsets.")
        return 0
    print(_table(table))
    return 0


def describe_members(ctx: ClientContext, admin: AdminClient, name: str, output: str) -> int:
    """The members of a group; for a KIP-848 group with their epochs (group_members)."""
    description = _describe(ctx, admin, name)
    epochs = None
    plaintext = str(ctx.config().get("security.protocol", "PLAINTEXT")).upper() == "PLAINTEXT"
    coordinator = description.coordinator
    if plaintext and coordinator is not None:
        try:
            epochs = describe_epochs(coordinator.host, coordinator.port, name, ctx.timeout_s)
        except OSError as exc:
            raise CliError(f"could not ask the coordinator of {name!r} for epochs: {exc}") from None
    if output == "json":
        doc: dict[str, Any] = {"group": name, "state": _state_name(description.state)}
        if epochs is not None:
            doc.update(
                group_epoch=epochs.group_epoch,
                assignment_epoch=epochs.assignment_epoch,
                assignor=epochs.assignor,
                members=[asdict(m) for m in epochs.members],
            )
        else:
            doc["members"] = [
                {"member_id": m.member_id, "client_id": m.client_id, "host": m.host}
                for m in description.members
            ]
        print(json.dumps(doc))
        return 0
    if epochs is None:
        table: list[tuple[str, ...]] = [
            ("GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS")
        ]
        for m in description.members:
            count = len(m.assignment.topic_partitions) if m.assignment else 0
            table.append((name, m.member_id, m.host, m.client_id, str(count)))
    else:
        print(
            f"GROUP {name}  STATE {epochs.state}  GROUP-EPOCH {epochs.group_epoch}  "
            f"ASSIGNMENT-EPOCH {epochs.assignment_epoch}  ASSIGNOR {epochs.assignor}"
        )
        table = [
            (
                "GROUP",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
                "#PARTITIONS",
                "CURRENT-EPOCH",
                "CURRENT-ASSIGNMENT",
                "TARGET-EPOCH",
                "TARGET-ASSIGNMENT",
            )
        ]
        for em in epochs.members:
            table.append(
                (
                    name,
                    em.member_id,
                    em.host,
                    em.client_id,
                    str(sum(len(ps) for ps in em.assignment.values())),
                    str(em.member_epoch),
                    assignment_text(em.assignment),
                    str(epochs.assignment_epoch),
                    assignment_text(em.target),
                )
            )
    if len(table) == 1:
        print(f"Consumer group '{name}' has no active members.")
        return 0
    print(_table(table))
    return 0


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        " ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# -- reset-offsets -------------------------------------------------------------------------


def _parse_topics(specs: list[str]) -> list[tuple[str, list[int] | None]]:
    parsed: list[tuple[str, list[int] | None]] = []
    for spec in specs:
        topic, sep, partitions = spec.partition(":")
        if not topic:
            raise UsageError(f"--topic needs a topic name, got {spec!r}")
        if not sep:
            parsed.append((topic, None))
            continue
        try:
            parsed.append((topic, sorted({int(p) for p in partitions.split(",")})))
        except ValueError:
            raise UsageError(f"--topic expects TOPIC[:P,...], got {spec!r}") from None
    return parsed


def _targets(
    ctx: ClientContext,
    admin: AdminClient,
    args: argparse.Namespace,
    committed: dict[tuple[str, int], int],
) -> list[tuple[str, int]]:
    if args.all_topics:
        return sorted(committed)
    targets: set[tuple[str, int]] = set()
    for topic, partitions in _parse_topics(args.topics):
        existing = topic_partitions(ctx, admin, topic)
        for p in partitions if partitions is not None else existing:
            if p not in existing:
                raise CliError(f"topic {topic!r} has no partition {p}")
            targets.add((topic, p))
    return sorted(targets)


def _new_offset(
    ctx: ClientContext,
    consumer: Consumer,
    args: argparse.Namespace,
    topic: str,
    partition: int,
    current: int | None,
) -> int:
    low, high = _watermarks(ctx, consumer, topic, partition)
    if args.to_earliest:
        return low
    if args.to_latest:
        return high
    if args.to_datetime is not None:
        millis = int(args.to_datetime.timestamp() * 1000)
        try:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, partition, millis)], timeout=ctx.timeout_s
            )
        except KafkaException as exc:
            raise ctx.error(exc, f"look up a time in {topic}[{partition}]", consumer) from None
        offset = int(found[0].offset)
        return high if offset < 0 else offset  # no record that late: the end, as Kafka
    if args.to_offset is not None:
        target = int(args.to_offset)
    else:
        # --shift-by: from the committed offset; with none, from the start (as Kafka does).
        target = (current if current is not None else low) + int(args.shift_by)
    return min(max(target, low), high)  # out-of-range targets are clamped, as Kafka does


def run_reset_offsets(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    name: str = args.name
    admin = _admin(ctx)
    description = _describe(ctx, admin, name)
    if args.execute and description.state != ConsumerGroupState.EMPTY:
        raise CliError(
            f"cannot reset the offsets of group {name!r}: it is {_state_name(description.state)},"
            " and offsets can only be reset while it is Empty; stop its consumers first"
        )
    committed = _committed(ctx, admin, name)
    targets = _targets(ctx, admin, args, committed)
    if not targets:
        raise CliError(f"group {name!r} has no offsets to reset on the topics given")
    consumer = _consumer(ctx)
    try:
        plan = [
            (topic, p, _new_offset(ctx, consumer, args, topic, p, committed.get((topic, p))))
            for topic, p in targets
        ]
    finally:
        consumer.close()
    if args.execute:
        request = ConsumerGroupTopicPartitions(
            name, [TopicPartition(topic, p, offset) for topic, p, offset in plan]
        )
        futures = admin.alter_consumer_group_offsets([request], request_timeout=ctx.timeout_s)
        result = _await(ctx, futures[name], f"reset the offsets of group {name!r}", name)
        for tp in result.topic_partitions or []:
            if tp.error is not None:
                raise ctx.kafka_error(
                    tp.error, f"reset the offset of {tp.topic}[{tp.partition}] in group {name!r}"
                )
    if args.format == "json":
        doc = [
            {"group": name, "topic": topic, "partition": p, "new_offset": offset}
            for topic, p, offset in plan
        ]
        print(json.dumps(doc))
    else:
        rows: list[tuple[str, ...]] = [("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET")]
        rows += [(name, topic, str(p), str(offset)) for topic, p, offset in plan]
        print(_table(rows))
        if not args.execute:
            print("Dry run: nothing changed; add --execute to commit these offsets.")
    return 0


# -- describe --watch (issue 17) ---------------------------------------------------------


def read_group(args: argparse.Namespace, name: str) -> tuple[list[OffsetRow], str]:
    """In a live view's worker: the group's rows and state."""
    ctx, admin = worker_clients(args)
    rows = describe_rows(ctx, admin, name)
    return rows, _state_name(_describe(ctx, admin, name).state)


def watch_group(args: argparse.Namespace) -> int:
    ClientContext(args)  # the flags checked here, before the worker starts
    name: str = args.name
    worker = live_worker(args)
    connection = client_args(args)
    rates = Rates()

    def render() -> Table:
        rows, state = worker.call(read_group, connection, name)
        consumed = rates.update(
            {
                (r.topic, r.partition): r.current_offset
                for r in rows
                if r.current_offset is not None and r.partition >= 0
            }
        )
        table = Table(title=f"group {name} · {state} · {time.strftime('%H:%M:%S')}")
        for column in ("TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"):
            table.add_column(column, justify="left" if column == "TOPIC" else "right")
        table.add_column("CONSUMED/S", justify="right")
        for column in ("CONSUMER-ID", "HOST", "CLIENT-ID"):
            table.add_column(column)
        for r in rows:
            table.add_row(
                r.topic or "-",
                str(r.partition) if r.partition >= 0 else "-",
                dash(r.current_offset),
                dash(r.log_end_offset),
                dash(r.lag),
                rate_text(consumed.get((r.topic, r.partition))),
                r.consumer_id or "-",
                r.host or "-",
                r.client_id or "-",
            )
        return table

    try:
        show_live(render, args.interval, args.iterations, recover=worker.renew)
    finally:
        worker.close()
    return 0
