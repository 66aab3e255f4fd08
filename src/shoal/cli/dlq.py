"""``shoal dlq``: list, inspect and redrive the dead-letter topics of shoal Apps.

A DLQ record is the original record (key, value, headers) plus ``shoal.dlq.*`` headers saying
where it came from, what failed, how often and when. ``list`` prints one line per record,
``show`` one record in full (the traceback included), and ``redrive`` sends records back to
the topics they came from (the DLQ itself is a log and keeps them).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from shoal.app.message import Message
from shoal.app.redrive import redrive
from shoal.app.resilience import dlq
from shoal.app.transport import TransportError
from shoal.cli.common import (
    ClientContext,
    CliError,
    UsageError,
    add_client_options,
    topic_partitions,
)
from shoal.cli.formatting import header_pairs

BATCH_MAX: Final = 500
POLL_S: Final = 0.5
READER_GROUP: Final = "shoal-cli-dlq"
"""librdkafka needs a group.id even for assigned partitions; nothing is joined or committed."""
KEY_WIDTH_MAX: Final = 32
"""Keys are cut in the table (``show`` prints them whole): one long key must not make every
line of the listing wrap."""

COLUMNS: Final = (
    "PARTITION",
    "OFFSET",
    "ORIGIN",
    "KEY",
    "EXCEPTION",
    "ATTEMPTS",
    "LAST-FAILURE",
)


def add_dlq_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dlq", help="list, show and redrive dead-letter topics", description=__doc__
    )
    actions = parser.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="one line per dead-lettered record")
    listing.add_argument("topic", metavar="TOPIC.dlq")
    listing.add_argument("--format", choices=["text", "json"], default="text")
    listing.set_defaults(run=run_list, command_parser=listing)

    show = actions.add_parser("show", help="one dead-lettered record: every header and the value")
    show.add_argument("topic", metavar="TOPIC.dlq")
    show.add_argument("offset", type=int)
    show.add_argument(
        "-p", "--partition", type=int, help="the DLQ partition (needed when several hold OFFSET)"
    )
    show.add_argument("--format", choices=["text", "json"], default="text")
    show.set_defaults(run=run_show, command_parser=show)

    redrive = actions.add_parser(
        "redrive", help="republish dead-lettered records to the topics they came from"
    )
    redrive.add_argument("topic", metavar="TOPIC.dlq")
    which = redrive.add_mutually_exclusive_group(required=True)
    which.add_argument("--offset", type=int, metavar="N", help="the record at offset N")
    which.add_argument(
        "--exception",
        metavar="TYPE",
        help="records that failed with TYPE (module.Class, or just Class)",
    )
    which.add_argument("--where-key", metavar="KEY", help="records with this key")
    which.add_argument("--all", action="store_true", help="every record of the DLQ")
    redrive.add_argument(
        "-p", "--partition", type=int, help="with --offset: the DLQ partition it is in"
    )
    redrive.set_defaults(run=run_redrive, command_parser=redrive)

    for action in (listing, show, redrive):
        add_client_options(action)


# -- reading ------------------------------------------------------------------------------------


def _consumer(ctx: ClientContext) -> Consumer:
    return Consumer(
        ctx.config(
            {
                "group.id": READER_GROUP,
                "enable.auto.commit": False,
                "allow.auto.create.topics": False,
                # A DLQ is read to its end once; an empty fetch should not be held long.
                "fetch.wait.max.ms": 100,
            }
        )
    )


def _message(raw: KafkaMessage) -> Message:
    _, timestamp_ms = raw.timestamp()
    headers = [(name, value or b"") for name, value in header_pairs(raw)]
    return Message(
        topic=raw.topic() or "",
        partition=raw.partition() or 0,
        offset=raw.offset() or 0,
        key=raw.key(),
        value=raw.value() or b"",
        headers=headers,
        timestamp_ms=max(timestamp_ms, 0),
    )


def _ranges(ctx: ClientContext, consumer: Consumer, topic: str) -> dict[int, tuple[int, int]]:
    """(log start, log end) of every partition of ``topic``."""
    out = {}
    for partition in topic_partitions(ctx, consumer, topic):
        try:
            out[partition] = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=ctx.timeout_s
            )
        except KafkaException as exc:
            raise ctx.error(exc, f"read the offsets of {topic} [{partition}]", consumer) from None
    return out


def _read(
    ctx: ClientContext, consumer: Consumer, topic: str, starts: dict[int, int], ends: dict[int, int]
) -> list[Message]:
    """Records from ``starts`` up to (not including) ``ends``, per partition."""
    wanted = {p: end for p, end in ends.items() if end > starts[p]}
    consumer.assign([TopicPartition(topic, p, starts[p]) for p in wanted])
    out: list[Message] = []
    idle_s = 0.0
    while wanted:
        batch = consumer.consume(BATCH_MAX, POLL_S)
        idle_s = 0.0 if batch else idle_s + POLL_S
        if idle_s > ctx.timeout_s:
            # The end offsets came from the broker, so the records are there: silence is a fault.
            raise CliError(f"reading {topic} stalled: no records within {ctx.timeout_s:g} s")
        for raw in batch:
            error = raw.error()
            if error is not None:
                raise ctx.kafka_error(error, f"read {topic}", consumer)
            partition, offset = raw.partition(), raw.offset()
            end = wanted.get(partition) if partition is not None else None
            if end is None or offset is None or offset >= end:
                continue
            out.append(_message(raw))
            if offset + 1 >= end:
                del wanted[partition]  # type: ignore[arg-type]  # not None: end was found
    out.sort(key=lambda m: (m.partition, m.offset))
    return out


def read_all(ctx: ClientContext, topic: str) -> list[Message]:
    consumer = _consumer(ctx)
    try:
        ranges = _ranges(ctx, consumer, topic)
        starts = {p: low for p, (low, _) in ranges.items()}
        ends = {p: high for p, (_, high) in ranges.items()}
        return _read(ctx, consumer, topic, starts, ends)
    finally:
        consumer.close()


def _partition_of(
    ranges: dict[int, tuple[int, int]], topic: str, offset: int, partition: int | None
) -> int:
    """The one partition that holds ``offset``, or a clear error."""
    if partition is not None:
        if partition not in ranges:
            raise CliError(f"topic {topic!r} has no partition {partition}")
        low, high = ranges[partition]
        if not low <= offset < high:
            raise CliError(f"{topic} [{partition}] holds offsets {low}..{high - 1}, not {offset}")
        return partition
    holders = [p for p, (low, high) in sorted(ranges.items()) if low <= offset < high]
    if not holders:
        raise CliError(f"no record at offset {offset} in any partition of {topic}")
    if len(holders) > 1:
        listed = ", ".join(map(str, holders))
        raise UsageError(f"offset {offset} is in partitions {listed} of {topic}: pick one with -p")
    return holders[0]


def read_one(ctx: ClientContext, topic: str, offset: int, partition: int | None) -> Message:
    consumer = _consumer(ctx)
    try:
        ranges = _ranges(ctx, consumer, topic)
        p = _partition_of(ranges, topic, offset, partition)
        found = _read(ctx, consumer, topic, {p: offset}, {p: offset + 1})
    finally:
        consumer.close()
    if not found:  # compacted away, or a transaction marker sits at that offset
        raise CliError(f"no record at offset {offset} in {topic} [{p}]")
    return found[0]


# -- presenting ---------------------------------------------------------------------------------


def _text(data: bytes | None) -> str:
    return "null" if data is None else data.decode("utf-8", "backslashreplace")


def _header_text(msg: Message, name: str) -> str | None:
    value = msg.header(name)
    return None if value is None else value.decode("utf-8", "replace")


def _time_ms(text: str | None) -> str:
    if text is None or not text.lstrip("-").isdigit():
        return "-"
    return datetime.fromtimestamp(int(text) / 1000, UTC).isoformat(timespec="milliseconds")


def summary(msg: Message) -> dict[str, Any]:
    """What ``list`` shows of a record, by name."""
    origin = _header_text(msg, dlq.ORIGINAL_TOPIC)
    partition = _header_text(msg, dlq.ORIGINAL_PARTITION)
    offset = _header_text(msg, dlq.ORIGINAL_OFFSET)
    attempts = _header_text(msg, dlq.ATTEMPTS)
    return {
        "partition": msg.partition,
        "offset": msg.offset,
        "original_topic": origin,
        "original_partition": int(partition) if partition and partition.isdigit() else None,
        "original_offset": int(offset) if offset and offset.isdigit() else None,
        "key": None if msg.key is None else _text(msg.key),
        "exception_type": _header_text(msg, dlq.EXCEPTION_TYPE),
        "attempts": int(attempts) if attempts and attempts.isdigit() else None,
        "last_failure": _time_ms(_header_text(msg, dlq.LAST_FAILURE_MS)),
    }


def _row(s: dict[str, Any]) -> tuple[str, ...]:
    origin = "-"
    if s["original_topic"] is not None:
        origin = f"{s['original_topic']}[{s['original_partition']}]@{s['original_offset']}"
    key = "null" if s["key"] is None else s["key"]
    if len(key) > KEY_WIDTH_MAX:
        key = key[: KEY_WIDTH_MAX - 1] + "…"
    return (
        str(s["partition"]),
        str(s["offset"]),
        origin,
        key,
        s["exception_type"] or "-",
        "-" if s["attempts"] is None else str(s["attempts"]),
        s["last_failure"],
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        " ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _show_text(msg: Message) -> str:
    lines = [
        f"topic:      {msg.topic}",
        f"partition:  {msg.partition}",
        f"offset:     {msg.offset}",
        f"timestamp:  {_time_ms(str(msg.timestamp_ms)) if msg.timestamp_ms else '-'}",
        f"key:        {_text(msg.key)}",
        "headers:",
    ]
    for name, value in msg.headers:
        text = _text(value)
        if name in (dlq.ORIGINAL_TIMESTAMP_MS, dlq.FIRST_FAILURE_MS, dlq.LAST_FAILURE_MS):
            text = f"{text} ({_time_ms(text)})"
        if "\n" in text:  # the traceback: indented under its name, as Python prints it
            lines.append(f"  {name}:")
            lines += ["    " + line for line in text.rstrip("\n").splitlines()]
        else:
            lines.append(f"  {name}: {text}")
    lines.append(f"value ({len(msg.value)} bytes):")
    lines.append(_text(msg.value))
    return "\n".join(lines)


def _show_json(msg: Message) -> dict[str, Any]:
    def field(data: bytes) -> dict[str, str]:
        try:
            return {"text": data.decode("utf-8")}
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(data).decode("ascii")}

    return {
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "timestamp_ms": msg.timestamp_ms,
        "key": None if msg.key is None else field(msg.key),
        "headers": [{"name": name, **field(value)} for name, value in msg.headers],
        "value": field(msg.value),
    }


# -- commands -----------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    records = read_all(ClientContext(args), args.topic)
    summaries = [summary(m) for m in records]
    if args.format == "json":
        print(json.dumps(summaries))
    elif summaries:
        print(_table([COLUMNS, *(_row(s) for s in summaries)]))
    else:
        print(f"{args.topic} is empty")
    return 0


def run_show(args: argparse.Namespace) -> int:
    msg = read_one(ClientContext(args), args.topic, args.offset, args.partition)
    if args.format == "json":
        print(json.dumps(_show_json(msg)))
    else:
        print(_show_text(msg))
    return 0


def exception_matches(wanted: str) -> Callable[[Message], bool]:
    """``ValueError`` matches ``builtins.ValueError``; ``billing.Declined`` matches exactly."""

    def match(msg: Message) -> bool:
        kind = _header_text(msg, dlq.EXCEPTION_TYPE)
        if kind is None:
            return False
        return kind == wanted or ("." not in wanted and kind.rpartition(".")[2] == wanted)

    return match


def _selection(args: argparse.Namespace, ctx: ClientContext) -> Callable[[Message], bool] | None:
    if args.partition is not None and args.offset is None:
        raise UsageError("-p/--partition goes with --offset")
    if args.offset is not None:
        consumer = _consumer(ctx)
        try:
            partition = _partition_of(
                _ranges(ctx, consumer, args.topic), args.topic, args.offset, args.partition
            )
        finally:
            consumer.close()
        offset: int = args.offset
        return lambda m: m.partition == partition and m.offset == offset
    if args.exception is not None:
        return exception_matches(args.exception)
    if args.where_key is not None:
        key = args.where_key.encode()
        return lambda m: m.key == key
    return None  # --all


def run_redrive(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    topic: str = args.topic
    where = _selection(args, ctx)
    if where is None:
        # Checked here, with the CLI's error messages; redrive itself would see an empty topic.
        consumer = _consumer(ctx)
        try:
            topic_partitions(ctx, consumer, topic)
        finally:
            consumer.close()
    try:
        # The App gets the same client settings (-X) as the reads above.
        count = asyncio.run(redrive(ctx.app_url(), topic, where=where))
    except (TransportError, KafkaException) as exc:
        raise CliError(f"cannot redrive {topic}: {exc}") from None
    print(f"Redrove {count} record{'' if count == 1 else 's'} from {topic}.")
    return 0
