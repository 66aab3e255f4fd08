"""``shoal top``: live rates per topic and lag per consumer group, as a Kafka client.

Messages in per second per topic come from end offsets (ListOffsets), consumption per group
from its committed offsets, so it works against any Kafka cluster.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

# The admin module's documented API, exported without __all__ (see shoal.cli.group).
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from rich.console import Group
from rich.table import Table

from shoal.cli.common import ClientContext, add_client_options
from shoal.cli.group import _await, _state_name, client_args, live_worker, worker_clients
from shoal.cli.live import Rates, add_watch_options, rate_text, reason, show_live
from shoal.client_worker import step

NO_OFFSET: Final = -1001
"""librdkafka's OFFSET_INVALID: no committed offset for the partition."""


def add_top_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser(
        "top",
        help="live rates per topic and lag per consumer group",
        description="Messages in per second per topic (end offsets), and per consumer group "
        "its state, members, lag and messages consumed per second (committed offsets).",
    )
    add_client_options(top)
    add_watch_options(top)
    top.add_argument("--internal", action="store_true", help="show internal topics too")
    top.set_defaults(run=run_top, command_parser=top)


def _end_offsets(
    ctx: ClientContext, admin: AdminClient, tps: list[TopicPartition]
) -> dict[Any, int]:
    if not tps:
        return {}
    futures = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps})  # type: ignore[no-untyped-call]
    return {
        (tp.topic, tp.partition): _await(ctx, f, "list offsets").offset for tp, f in futures.items()
    }


@dataclass(frozen=True)
class TopReading:
    """One refresh's data, read in the live view's worker process."""

    partitions: dict[str, int]
    """topic → its partition count"""
    ends: dict[tuple[str, int], int]
    groups: dict[str, tuple[str, int]]
    """group → (state, members)"""
    committed: dict[tuple[str, tuple[str, int]], int]
    lags: dict[str, int]
    unlisted: str | None
    """Why some brokers' groups are missing (a broker that did not answer ListGroups)."""


def read_top(args: argparse.Namespace, internal: bool) -> TopReading:
    """In a live view's worker: end offsets of the topics, and the groups' offsets."""
    ctx, admin = worker_clients(args)
    step("read cluster metadata")
    try:
        topics = admin.list_topics(timeout=ctx.timeout_s).topics
    except KafkaException as exc:  # named, as every other request of the view is
        raise ctx.error(exc, "read cluster metadata", admin) from None
    names = sorted(t for t in topics if internal or not t.startswith("_"))
    ends = _end_offsets(
        ctx, admin, [TopicPartition(t, p) for t in names for p in topics[t].partitions]
    )
    listing = _await(ctx, admin.list_consumer_groups(), "list groups")
    ids = sorted(g.group_id for g in listing.valid)
    # A broker that did not answer ListGroups (dead, or its groups moving): the groups it
    # coordinates are missing from the table, and the table says so.
    unlisted = (
        f"UNAVAILABLE: the groups of {len(listing.errors)} broker(s) are not listed: "
        f"{reason(listing.errors[0])}"
        if listing.errors
        else None
    )
    committed: dict[tuple[str, tuple[str, int]], int] = {}
    lags: dict[str, int] = {}
    groups: dict[str, tuple[str, int]] = {}
    if ids:
        described = admin.describe_consumer_groups(ids)
        for g in ids:
            info = _await(ctx, described[g], f"describe group {g!r}", g)
            groups[g] = (_state_name(info.state), len(info.members))
            answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])[g]
            offsets = [
                tp
                for tp in _await(ctx, answer, f"list offsets of {g!r}", g).topic_partitions
                if tp.offset != NO_OFFSET
            ]
            group_ends = _end_offsets(
                ctx, admin, [TopicPartition(tp.topic, tp.partition) for tp in offsets]
            )
            committed.update({(g, (tp.topic, tp.partition)): tp.offset for tp in offsets})
            lags[g] = sum(
                max(0, group_ends[(tp.topic, tp.partition)] - tp.offset) for tp in offsets
            )
    partitions = {t: len(topics[t].partitions) for t in names}
    return TopReading(partitions, ends, groups, committed, lags, unlisted)


def run_top(args: argparse.Namespace) -> int:
    ClientContext(args)  # the flags checked here, before the worker starts
    worker = live_worker(args)
    connection = client_args(args)
    topic_rates, group_rates = Rates(), Rates()

    def render() -> Group:
        reading: TopReading = worker.call(read_top, connection, args.internal)
        totals = {
            t: sum(o for (topic, _), o in reading.ends.items() if topic == t)
            for t in reading.partitions
        }
        produced = topic_rates.update_sums(dict(reading.ends))
        topic_table = Table(title=f"topics · {time.strftime('%H:%M:%S')}")
        for column in ("TOPIC", "PARTITIONS", "MESSAGES", "IN/S"):
            topic_table.add_column(column, justify="left" if column == "TOPIC" else "right")
        for t, count in reading.partitions.items():
            topic_table.add_row(t, str(count), str(totals[t]), rate_text(produced.get(t)))

        group_table = Table(
            title="consumer groups", caption=reading.unlisted, caption_style="bold red"
        )
        for column in ("GROUP", "STATE", "MEMBERS", "LAG", "CONSUMED/S"):
            group_table.add_column(column, justify="left" if column == "GROUP" else "right")
        if reading.groups:
            consumed = group_rates.update_sums(reading.committed)
            for g, (state, count) in reading.groups.items():
                group_table.add_row(
                    g, state, str(count), str(reading.lags[g]), rate_text(consumed.get(g))
                )
        return Group(topic_table, group_table)

    try:
        show_live(render, args.interval, args.iterations, recover=worker.renew)
    finally:
        worker.close()
    return 0
