"""What a hung orders saga on the cluster looked like, for the failure message (issue 21).

When the saga times out, :func:`describe` says, for every subscriber's group of the four Apps:
the group's state, its members and what each is assigned, and per partition of the topics it
reads the leader, the ISR, the committed offset and the end offset (the lag); then where the
stuck order's records are (topic, partition, offset) and the order's timeline. A test helper
only: it reads the cluster with confluent-kafka's admin client and consumers, nothing of the
product is changed for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from shoal import App
from shoal.app.transports.kafka import KafkaTransport
from shoal.app.transports.kafka_consumer import KafkaConsumer
from shoal.app.transports.kafka_join_watch import JoinWatch

TIMEOUT_S = 10.0


def describe(
    bootstrap: str, apps: Iterable[App], topics: Iterable[str], key: str, timeline: str
) -> str:
    """The cluster's view of the saga's groups and topics, and where ``key``'s records are."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    apps = list(apps)
    lines = _apps_view(apps)
    try:
        lines += _groups(admin, apps)
    except Exception as exc:  # a diagnosis must not hide the failure it explains
        lines.append(f"groups: could not describe them: {exc!r}")
    try:
        lines += _records_of(bootstrap, topics, key)
    except Exception as exc:
        lines.append(f"records of {key}: could not read them: {exc!r}")
    lines.append(f"timeline of {key}:")
    lines.append(timeline)
    return "\n".join(lines)


COUNTED = (
    "shoal_messages_processed",
    "shoal_messages_retried",
    "shoal_messages_failed",
    "shoal_messages_dead_lettered",
    "shoal_messages_duplicate",
    "shoal_messages_published",
)


def _apps_view(apps: list[App]) -> list[str]:
    """What each App itself sees: per consumer its group, assignment, and whether it is
    paused with records held back; then its non-zero message counters."""
    lines = []
    for app in apps:
        lines.append(f"app {app.name}:")
        # The runners are the App's own (no public accessor): read-only, for the diagnosis.
        for runner in app._runners:
            for group, consumer in list(runner.consumers):
                owned = sorted(f"{t}[{p}]" for t, p in consumer.assignment())
                state = ""
                if isinstance(consumer, KafkaConsumer):
                    state = (
                        f", paused {consumer._paused}, held {len(consumer._held)},"
                        f" prefetching {consumer._next is not None}"
                    )
                lines.append(f"  consumer {group}: {', '.join(owned) or 'nothing'}{state}")
                if isinstance(consumer, KafkaConsumer):
                    lines += _librdkafka_view(getattr(consumer._join_watch, "last_stats", None))
        for family in app.metrics.families():
            if family.name not in COUNTED:
                continue
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.value:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    lines.append(f"  {sample.name}{{{labels}}} {int(sample.value)}")
    return lines


def keep_last_stats(on_stats: Callable[[JoinWatch, str | bytes], None]) -> Any:
    """``JoinWatch.on_stats`` that also keeps the consumer's latest librdkafka statistics, for
    :func:`_librdkafka_view` (patched in by the test before the Apps start)."""

    def keeping(watch: JoinWatch, stats: str | bytes) -> None:
        watch.last_stats = stats  # type: ignore[attr-defined]
        on_stats(watch, stats)

    return keeping


def _librdkafka_view(stats: str | bytes | None) -> list[str]:
    """The consumer's group and fetch state as librdkafka last reported them."""
    if stats is None:
        return ["    (no statistics kept)"]
    data = json.loads(stats)
    cgrp = data.get("cgrp", {})
    lines = [
        f"    librdkafka: state {cgrp.get('state')}, join_state {cgrp.get('join_state')},"
        f" assignment_size {cgrp.get('assignment_size')},"
        f" rebalance {cgrp.get('rebalance_cnt')} ({cgrp.get('rebalance_reason')!r})"
    ]
    for topic, tstats in sorted(data.get("topics", {}).items()):
        for part, p in sorted(tstats.get("partitions", {}).items()):
            if part == "-1":
                continue
            lines.append(
                f"    {topic}[{part}] leader {p.get('leader')} fetch_state"
                f" {p.get('fetch_state')} fetchq {p.get('fetchq_cnt')} next"
                f" {p.get('next_offset')} app {p.get('app_offset')} committed"
                f" {p.get('committed_offset')} hi {p.get('hi_offset')}"
            )
    return lines


def _groups(admin: AdminClient, apps: Iterable[App]) -> list[str]:
    reads = {sub.group: sub.topics for app in apps for sub in app.subscribers}
    topic_names = sorted({t for ts in reads.values() for t in ts})
    meta = admin.list_topics(timeout=TIMEOUT_S)
    leaders: dict[tuple[str, int], str] = {}
    for name in topic_names:
        topic = meta.topics.get(name)
        if topic is None:
            continue
        for p, part in topic.partitions.items():
            leaders[(name, p)] = f"leader {part.leader} isr {sorted(part.isrs)}"
    ends = _end_offsets(admin, list(leaders))
    described = admin.describe_consumer_groups(list(reads), request_timeout=TIMEOUT_S)
    lines = [f"brokers alive: {sorted(meta.brokers)}"]
    for group, topics in sorted(reads.items()):
        lines.append(f"group {group} (reads {', '.join(topics)}):")
        try:
            desc: Any = described[group].result(TIMEOUT_S)
            lines.append(
                f"  state {desc.state}, coordinator {desc.coordinator.id}, "
                f"{len(desc.members)} member(s)"
            )
            for member in desc.members:
                owned = sorted(
                    f"{tp.topic}[{tp.partition}]" for tp in member.assignment.topic_partitions
                )
                lines.append(f"  member …{member.member_id[-12:]}: {', '.join(owned) or 'nothing'}")
        except Exception as exc:
            lines.append(f"  cannot describe it: {exc!r}")
        request = [ConsumerGroupTopicPartitions(group)]
        try:
            committed_list = admin.list_consumer_group_offsets(request, request_timeout=TIMEOUT_S)[
                group
            ].result(TIMEOUT_S)
            committed = {
                (tp.topic, tp.partition): tp.offset for tp in committed_list.topic_partitions
            }
        except Exception as exc:
            lines.append(f"  cannot list its committed offsets: {exc!r}")
            committed = {}
        for tp in sorted(k for k in leaders if k[0] in topics):
            end = ends.get(tp, -1)
            done = committed.get(tp, -1)
            lag = "?" if end < 0 else end - max(done, 0)
            lines.append(
                f"  {tp[0]}[{tp[1]}] {leaders[tp]}: committed {done}, end {end}, lag {lag}"
            )
    return lines


def _end_offsets(admin: AdminClient, partitions: list[tuple[str, int]]) -> dict[Any, int]:
    if not partitions:
        return {}
    asked = {
        TopicPartition(t, p): OffsetSpec.latest()  # type: ignore[no-untyped-call]
        for t, p in partitions
    }
    out: dict[Any, int] = {}
    for tp, future in admin.list_offsets(asked, request_timeout=TIMEOUT_S).items():
        try:
            out[(tp.topic, tp.partition)] = future.result(TIMEOUT_S).offset
        except Exception:
            out[(tp.topic, tp.partition)] = -1
    return out


def _records_of(bootstrap: str, topics: Iterable[str], key: str) -> list[str]:
    """Every record keyed ``key`` in ``topics``, read from the start with a fresh transport."""

    async def read() -> list[str]:
        transport = KafkaTransport(bootstrap, log_level=4)
        found = []
        for topic in topics:
            for msg in await transport.read_topic(topic):
                if msg.key == key.encode():
                    found.append(f"  {topic}[{msg.partition}]@{msg.offset}")
        return found

    return [f"records keyed {key}:", *asyncio.run(read())]
