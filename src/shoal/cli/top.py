"""``shoal top``: live rates per topic and lag per consumer group, as a Kafka client.

Messages in per second per topic come from end offsets (ListOffsets), consumption per group
from its committed offsets, so it works against any Kafka cluster.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Final

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

# The admin module's documented API, exported without __all__ (see shoal.cli.group).
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from rich.console import Group
from rich.table import Table

from shoal.cli.common import ClientContext, add_client_options
from shoal.cli.group import _await, _state_name, renewable_admin
from shoal.cli.live import Rates, add_watch_options, rate_text, reason, show_live

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


def run_top(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    renewable = renewable_admin(ctx)
    topic_rates, group_rates = Rates(), Rates()

    def render() -> Group:
        admin = renewable.client
        topics = admin.list_topics(timeout=ctx.timeout_s).topics
        names = sorted(t for t in topics if args.internal or not t.startswith("_"))
        ends = _end_offsets(
            ctx, admin, [TopicPartition(t, p) for t in names for p in topics[t].partitions]
        )
        totals = {t: sum(o for (topic, _), o in ends.items() if topic == t) for t in names}
        produced = topic_rates.update_sums(
            {(topic, partition): o for (topic, partition), o in ends.items()}
        )
        topic_table = Table(title=f"topics · {time.strftime('%H:%M:%S')}")
        for column in ("TOPIC", "PARTITIONS", "MESSAGES", "IN/S"):
            topic_table.add_column(column, justify="left" if column == "TOPIC" else "right")
        for t in names:
            topic_table.add_row(
                t, str(len(topics[t].partitions)), str(totals[t]), rate_text(produced.get(t))
            )

        listing = _await(ctx, admin.list_consumer_groups(), "list groups")
        ids = sorted(g.group_id for g in listing.valid)
        # A broker that did not answer ListGroups (dead, or its groups moving): the groups it
        # coordinates are missing from the table, and the table says so.
        missing = (
            f"UNAVAILABLE: the groups of {len(listing.errors)} broker(s) are not listed: "
            f"{reason(listing.errors[0])}"
            if listing.errors
            else None
        )
        group_table = Table(title="consumer groups", caption=missing, caption_style="bold red")
        for column in ("GROUP", "STATE", "MEMBERS", "LAG", "CONSUMED/S"):
            group_table.add_column(column, justify="left" if column == "GROUP" else "right")
        if ids:
            described = admin.describe_consumer_groups(ids)
            committed: dict[tuple[str, tuple[str, int]], int] = {}
            lags: dict[str, int] = {}
            members: dict[str, tuple[str, int]] = {}
            for g in ids:
                info = _await(ctx, described[g], f"describe group {g!r}", g)
                members[g] = (_state_name(info.state), len(info.members))
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
            consumed = group_rates.update_sums(committed)
            for g in ids:
                state, count = members[g]
                group_table.add_row(g, state, str(count), str(lags[g]), rate_text(consumed.get(g)))
        return Group(topic_table, group_table)

    show_live(render, args.interval, args.iterations, recover=renewable.renew)
    return 0
